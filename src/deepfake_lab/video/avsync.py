"""Audio-visual sync, the classical way: a mouth-motion signal from a face track against the
audio's energy envelope, cross-correlated over a range of lags.

- Mouth motion: per frame, the mean absolute luma change inside the mouth region of the
  aligned crops (FFHQ alignment puts the mouth at a fixed place, so head motion is already
  removed); high when the lips move.
- Audio envelope: RMS energy of the speech band (300-3400 Hz) in windows centred on each
  video frame, in dB, then its positive first difference (onsets: the lips move as sound
  starts, not while a vowel is held).
- Both are z-scored; the normalised cross-correlation ``c(k)`` for lags ``|k| <= max_lag``
  frames picks the offset (refined by a parabola through the peak).

Sign: a positive ``offset_ms`` means the audio lags the video (the sound comes later).
Confidence: the peak's height above the median correlation, in units of the correlations'
median absolute deviation (a robust z-score of the peak). Uncertainty: the half-width of
the peak where ``c`` stays above half of its height over the median, in ms, at least half a
frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import butter, sosfiltfilt

from deepfake_lab.errors import UserError

_LUMA = np.array([0.299, 0.587, 0.114])
#: Mouth region of an FFHQ-aligned crop, as fractions of its side (rows, cols).
MOUTH_ROWS, MOUTH_COLS = (0.66, 0.90), (0.30, 0.70)


@dataclass
class SyncEstimate:
    """The result of ``estimate_offset``.

    Attributes:
        offset_ms: audio delay relative to the video (positive: audio lags).
        confidence: robust z-score of the correlation peak (higher: clearer).
        offset_uncertainty_ms: half-width of the peak, in ms.
        lags_ms: the lags tried, in ms.
        correlation: the normalised cross-correlation at each lag.
    """

    offset_ms: float
    confidence: float
    offset_uncertainty_ms: float
    lags_ms: list[float]
    correlation: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


def mouth_motion(crops: np.ndarray) -> np.ndarray:
    """Mouth-region motion per frame of aligned crops.

    Args:
        crops: (T, S, S, 3) uint8 FFHQ-aligned face crops of one track, consecutive frames.

    Returns:
        (T,) float, mean absolute luma change in the mouth region against the previous
        frame (the first frame repeats the second's value).
    """
    t, s = crops.shape[0], crops.shape[1]
    if t < 2:
        raise UserError("mouth motion needs at least 2 frames")
    r0, r1 = (int(round(f * s)) for f in MOUTH_ROWS)
    c0, c1 = (int(round(f * s)) for f in MOUTH_COLS)
    y = crops[:, r0:r1, c0:c1].astype(np.float64) @ _LUMA
    d = np.abs(np.diff(y, axis=0)).mean(axis=(1, 2))
    return np.concatenate([d[:1], d])


def audio_envelope(pcm: np.ndarray, rate: int, fps: float, n_frames: int) -> np.ndarray:
    """Speech-band onset envelope sampled at the video frames.

    Args:
        pcm: (N,) mono float audio.
        rate: its sample rate (Hz).
        fps: video frame rate.
        n_frames: frames to sample (frame ``t`` is centred at ``(t + 0.5) / fps``).

    Returns:
        (n_frames,) float: positive first difference of the band energy in dB.
    """
    if rate < 8000:
        raise UserError(f"audio at {rate} Hz is too coarse for the speech band; need >= 8 kHz")
    sos = butter(4, [300, 3400], btype="bandpass", fs=rate, output="sos")
    band = sosfiltfilt(sos, np.asarray(pcm, np.float64))
    half = int(rate / fps)  # windows of two frame lengths, centred on each frame
    centres = ((np.arange(n_frames) + 0.5) / fps * rate).astype(int)
    energy = np.empty(n_frames)
    for i, c in enumerate(centres):
        seg = band[max(0, c - half) : c + half]
        energy[i] = 10 * np.log10(np.mean(seg**2) + 1e-10) if len(seg) else -100.0
    onset = np.diff(energy, prepend=energy[0])
    return np.maximum(onset, 0.0)


def _z(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def estimate_offset(
    video_signal: np.ndarray, audio_signal: np.ndarray, fps: float, max_lag_ms: float = 600.0
) -> SyncEstimate:
    """Offset between a video-side and an audio-side signal sampled at the same frames.

    Args:
        video_signal: (T,) e.g. ``mouth_motion``.
        audio_signal: (T,) e.g. ``audio_envelope``.
        fps: frames per second of both.
        max_lag_ms: lags tried, both ways.

    Returns:
        The estimate (see the module docstring for sign, confidence and uncertainty).
    """
    v, a = _z(video_signal), _z(audio_signal)
    if len(v) != len(a):
        raise UserError(f"signals differ in length ({len(v)} vs {len(a)} frames)")
    max_lag = int(round(max_lag_ms / 1000 * fps))
    if len(v) < 2 * max_lag + 8:
        raise UserError(
            f"{len(v)} frames are too few for lags of +-{max_lag_ms:.0f} ms; use a longer clip"
        )
    lags = np.arange(-max_lag, max_lag + 1)
    corr = np.empty(len(lags))
    for i, k in enumerate(lags):
        # audio lagging by k frames: the audio at t + k goes with the video at t
        if k >= 0:
            x, y = v[: len(v) - k], a[k:]
        else:
            x, y = v[-k:], a[: len(a) + k]
        corr[i] = float(np.mean(x * y))
    i = int(np.argmax(corr))
    shift = 0.0
    if 0 < i < len(corr) - 1:  # parabola through the peak and its neighbours
        den = corr[i - 1] - 2 * corr[i] + corr[i + 1]
        shift = 0.5 * (corr[i - 1] - corr[i + 1]) / den if den < 0 else 0.0
    med = float(np.median(corr))
    mad = float(np.median(np.abs(corr - med))) + 1e-9
    half = med + (corr[i] - med) / 2
    lo = i
    while lo > 0 and corr[lo - 1] > half:
        lo -= 1
    hi = i
    while hi < len(corr) - 1 and corr[hi + 1] > half:
        hi += 1
    frame_ms = 1000 / fps
    return SyncEstimate(
        offset_ms=float((lags[i] + shift) * frame_ms),
        confidence=float((corr[i] - med) / mad),
        offset_uncertainty_ms=float(max(0.5, (hi - lo + 1) / 2) * frame_ms),
        lags_ms=[float(k * frame_ms) for k in lags],
        correlation=[float(c) for c in corr],
    )
