"""Audio-visual sync, the classical way: a mouth signal from a face track against the
audio's speech envelope, cross-correlated over a range of lags.

- Mouth signals (``mouth``): the crop's mouth openness and, with the ``lips`` extra, the
  outer-lip gap of dlib's 68 landmarks; their correlation curves are averaged.
- Audio envelope: RMS of the speech band (300-3400 Hz) in windows centred on each video
  frame, floored ``ENVELOPE_RANGE_DB`` below the loudest window (digital silence, e.g. the
  padding of a shifted track, would otherwise be an outlier), as amplitude (``av_sync``),
  dB, or the positive first difference of the dB (onsets).
- Both sides band-passed to ``SYLLABLE_BAND_HZ`` (2-7 Hz), where mouth opening and the
  speech envelope are most coherent (Chandrasekaran et al. 2009, PLoS Comput Biol 5(7)):
  it removes the speech/silence plateau and slow drift, which otherwise decide the peak.
  ``bench/avsync_signals.py`` measures every variant on the shared clips; this one moved
  the untouched GRID/SadTalker readings from -254/-15/+8 ms to -27/+5/+15 ms and recovers
  every +-200/400 ms shift within 2 ms.
- Both are z-scored; the normalised cross-correlation ``c(k)`` for lags ``|k| <= max_lag``
  frames picks the offset (refined by a parabola through the peak).

Sign: a positive ``offset_ms`` means the audio lags the video (the sound comes later).
Confidence: the peak's height above the median correlation, in units of the correlations'
median absolute deviation (a robust z-score of the peak). Uncertainty: the half-width of
the peak where ``c`` stays above half of its height over the median, in ms, at least half a
frame. ``chance_p``: the share of phase-randomised audio signals (same spectrum, no relation
to the mouth) whose best correlation over the same lags reaches the peak; on 3-second
clips it is rarely small, i.e. such a clip is too short to show that the audio belongs to
the mouth, whatever the offset reads.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import butter, sosfiltfilt

from deepfake_lab.errors import UserError

#: Syllable-rate band (Hz) both signals are filtered to before correlating (module docstring).
SYLLABLE_BAND_HZ = (2.0, 7.0)
#: Windows quieter than the loudest by more than this (dB) are floored there.
ENVELOPE_RANGE_DB = 60.0
#: Phase-randomised audio signals behind ``chance_p``.
SURROGATES = 200
#: A window is read only when the face track covers at least this share of its frames.
MIN_WINDOW_COVERAGE = 0.8


@dataclass
class SyncEstimate:
    """The result of ``estimate_offset``.

    Attributes:
        offset_ms: audio delay relative to the video (positive: audio lags).
        confidence: robust z-score of the correlation peak (higher: clearer).
        offset_uncertainty_ms: half-width of the peak, in ms.
        lags_ms: the lags tried, in ms.
        correlation: the normalised cross-correlation at each lag.
        chance_p: share of phase-randomised audio signals whose best correlation reaches
            the peak (None when not computed).
        chance_level: the 95th percentile of those best correlations (None likewise).
    """

    offset_ms: float
    confidence: float
    offset_uncertainty_ms: float
    lags_ms: list[float]
    correlation: list[float]
    chance_p: float | None = None
    chance_level: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def audio_envelope(
    pcm: np.ndarray,
    rate: int,
    fps: float,
    n_frames: int,
    times_s: np.ndarray | None = None,
    onsets: bool = True,
    window_frames: float = 2.0,
    amplitude: bool = False,
    range_db: float = ENVELOPE_RANGE_DB,
) -> np.ndarray:
    """Speech-band envelope sampled at the video frames.

    Args:
        pcm: (N,) mono float audio; sample ``i`` at ``i / rate`` s.
        rate: its sample rate (Hz).
        fps: video frame rate.
        n_frames: frames to sample.
        times_s: start time of each frame (default ``t / fps``); windows are centred half
            a frame later.
        onsets: return the positive first difference of the energy in dB (True) or the
            envelope itself (False).
        window_frames: length of the energy window, in frames (longer: smoother).
        amplitude: without ``onsets``, the RMS amplitude instead of the energy in dB.
        range_db: windows more than this below the loudest are floored there.

    Returns:
        (n_frames,) float: band energy in dB (or RMS amplitude), or the positive first
        difference of the dB.
    """
    if rate < 8000:
        raise UserError(f"audio at {rate} Hz is too coarse for the speech band; need >= 8 kHz")
    sos = butter(4, [300, 3400], btype="bandpass", fs=rate, output="sos")
    band = sosfiltfilt(sos, np.asarray(pcm, np.float64))
    half = int(window_frames * rate / fps / 2)  # windows centred on each frame
    starts = np.arange(n_frames) / fps if times_s is None else np.asarray(times_s, np.float64)
    centres = ((starts + 0.5 / fps) * rate).astype(int)
    energy = np.empty(n_frames)
    for i, c in enumerate(centres):
        seg = band[max(0, c - half) : c + half]
        energy[i] = 10 * np.log10(np.mean(seg**2) + 1e-20) if len(seg) else -200.0
    energy = np.maximum(energy, energy.max() - range_db)
    if not onsets:
        return 10 ** (energy / 20) if amplitude else energy
    return np.maximum(np.diff(energy, prepend=energy[0]), 0.0)


def band_limit(
    x: np.ndarray, fps: float, band: tuple[float, float] = SYLLABLE_BAND_HZ
) -> np.ndarray:
    """``x`` band-passed to ``band`` Hz (2nd-order Butterworth, forward and backward, so no
    delay is added).

    Args:
        x: (T,) a signal sampled at ``fps``.
        fps: its rate; the band's top is lowered to 0.9 x Nyquist for low frame rates.
        band: (low, high) in Hz.

    Returns:
        (T,) float64.

    Raises:
        UserError: too few frames to filter, or a band above the Nyquist frequency.
    """
    lo, hi = band[0], min(band[1], 0.45 * fps)
    if not 0 < lo < hi:
        raise UserError(f"{fps:g} fps is too low for a {band[0]:g}-{band[1]:g} Hz band")
    sos = butter(2, [lo, hi], btype="bandpass", fs=fps, output="sos")
    x = np.asarray(x, np.float64)
    if len(x) < 16:
        raise UserError(f"{len(x)} frames are too few to filter; use a longer clip")
    return sosfiltfilt(sos, x, padlen=min(len(x) - 1, 3 * (2 * len(sos) + 1)))


def _phase_randomised(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A signal with ``a``'s power spectrum and random phases (a surrogate with no relation
    to anything else)."""
    f = np.fft.rfft(a)
    phase = np.exp(1j * rng.uniform(0, 2 * np.pi, len(f)))
    phase[0] = 1.0
    if len(a) % 2 == 0:
        phase[-1] = 1.0  # the Nyquist bin stays real
    return zscore(np.fft.irfft(f * phase, len(a)))


def zscore(x: np.ndarray) -> np.ndarray:
    """``x`` minus its mean over its standard deviation (all zeros when constant)."""
    x = np.asarray(x, np.float64)
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def _xcorr(v: np.ndarray, a: np.ndarray, lags: np.ndarray) -> np.ndarray:
    corr = np.empty(len(lags))
    for i, k in enumerate(lags):
        # audio lagging by k frames: the audio at t + k goes with the video at t
        if k >= 0:
            x, y = v[: len(v) - k], a[k:]
        else:
            x, y = v[-k:], a[: len(a) + k]
        corr[i] = float(np.mean(x * y))
    return corr


def check_max_lag(max_lag_ms: float, fps: float) -> int:
    """``max_lag_ms`` in whole frames at ``fps``.

    Raises:
        UserError: not a finite number, or under one frame.
    """
    if not math.isfinite(max_lag_ms) or max_lag_ms * fps / 1000 < 0.5:
        raise UserError(
            f"--max-lag-ms must be at least one frame ({1000 / fps:.0f} ms at {fps:g} fps), "
            f"got {max_lag_ms}"
        )
    return int(round(max_lag_ms / 1000 * fps))


def is_flat(x: np.ndarray) -> bool:
    """True when ``x`` does not vary (digital silence, a mouth that never moves): nothing to
    correlate, and every lag would tie."""
    x = np.asarray(x, np.float64)
    return not np.isfinite(x).all() or float(np.ptp(x)) <= 1e-9 * max(float(np.abs(x).max()), 1e-30)


def estimate_offset(
    video_signal: np.ndarray | list[np.ndarray],
    audio_signal: np.ndarray,
    fps: float,
    max_lag_ms: float = 600.0,
    surrogates: int = 0,
    seed: int = 0,
) -> SyncEstimate:
    """Offset between a video-side and an audio-side signal sampled at the same frames.

    Args:
        video_signal: (T,) e.g. ``mouth_openness``, or several such signals of the same
            mouth: their correlation curves are averaged, so evidence they share adds up and
            noise they do not share averages out.
        audio_signal: (T,) e.g. ``audio_envelope``.
        fps: frames per second of both.
        max_lag_ms: lags tried, both ways.
        surrogates: phase-randomised versions of the audio signal to compute ``chance_p``
            from (0: skip).
        seed: their random generator's seed.

    Returns:
        The estimate (see the module docstring for sign, confidence and uncertainty).
    """
    signals = [video_signal] if isinstance(video_signal, np.ndarray) else list(video_signal)
    vs, a = [zscore(v) for v in signals], zscore(audio_signal)
    if any(len(v) != len(a) for v in vs):
        raise UserError(f"signals differ in length ({[len(v) for v in vs]} vs {len(a)} frames)")
    max_lag = check_max_lag(max_lag_ms, fps)
    if len(a) < 2 * max_lag + 8:
        raise UserError(
            f"{len(a)} frames are too few for lags of +-{max_lag_ms:.0f} ms; use a longer clip"
        )
    lags = np.arange(-max_lag, max_lag + 1)
    corr = np.mean([_xcorr(v, a, lags) for v in vs], axis=0)
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
    chance_p = chance_level = None
    if surrogates > 0:
        rng = np.random.default_rng(seed)
        null = [
            np.mean([_xcorr(v, s, lags) for v in vs], axis=0).max()
            for s in (_phase_randomised(a, rng) for _ in range(surrogates))
        ]
        chance_p = (1 + int(np.sum(np.array(null) >= corr[i]))) / (1 + surrogates)
        chance_level = float(np.percentile(null, 95))
    frame_ms = 1000 / fps
    return SyncEstimate(
        offset_ms=float((lags[i] + shift) * frame_ms),
        confidence=float((corr[i] - med) / mad),
        offset_uncertainty_ms=float(max(0.5, (hi - lo + 1) / 2) * frame_ms),
        lags_ms=[float(k * frame_ms) for k in lags],
        correlation=[float(c) for c in corr],
        chance_p=chance_p,
        chance_level=chance_level,
    )


def windowed_offsets(
    signals: list[np.ndarray],
    audio: np.ndarray,
    present: np.ndarray,
    times_s: np.ndarray,
    fps: float,
    window_s: float,
    hop_s: float | None = None,
    max_lag_ms: float = 600.0,
    surrogates: int = SURROGATES,
) -> list[dict[str, Any]]:
    """The offset read in sliding windows: does it hold over the whole video?

    Args:
        signals: (T,) band-passed mouth signals; ``audio``: (T,) band-passed envelope.
        present: (T,) bool, frames where the face track was found (its signal elsewhere is
            interpolated, so a window mostly without the face is skipped, not read).
        times_s: (T,) frame times; ``fps``: their rate.
        window_s: window length; ``hop_s``: step between window starts (default: half a
            window).
        max_lag_ms, surrogates: as in :func:`estimate_offset`, per window.

    Returns:
        One dict per window: ``start_s``, ``end_s``, ``face_coverage`` and either
        ``offset_ms``, ``confidence``, ``offset_uncertainty_ms``, ``chance_p``, or
        ``skipped`` (why).

    Raises:
        UserError: a window too short for the lags or longer than the video.
    """
    for name, value in (("--window", window_s), ("--hop", hop_s)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserError(f"{name} must be a positive number of seconds, got {value}")
    n, size = len(audio), int(round(window_s * fps))
    hop = max(1, int(round((hop_s if hop_s is not None else window_s / 2) * fps)))
    need = 2 * check_max_lag(max_lag_ms, fps) + 8
    # A window whose band-passed audio (or mouth) has almost none of the clip's variation
    # is silent (or still) there: skipped, not read.
    quiet = 1e-3 * float(np.std(audio)), [1e-3 * float(np.std(v)) for v in signals]
    if size < need:
        raise UserError(
            f"--window {window_s:g} s is too short for lags of +-{max_lag_ms:.0f} ms; "
            f"use {need / fps:.1f} s or more"
        )
    if size > n:
        raise UserError(f"--window {window_s:g} s is longer than the video ({n / fps:.1f} s)")
    out = []
    for start in range(0, n - size + 1, hop):
        part = slice(start, start + size)
        cover = float(np.mean(present[part]))
        rec: dict[str, Any] = {
            "start_s": round(float(times_s[start]), 3),
            "end_s": round(float(times_s[start + size - 1]) + 1 / fps, 3),
            "face_coverage": round(cover, 3),
        }
        if cover < MIN_WINDOW_COVERAGE:
            rec["skipped"] = f"the face is in {cover:.0%} of the window's frames"
        elif np.std(audio[part]) <= quiet[0]:
            rec["skipped"] = "the audio is silent here"
        elif all(np.std(v[part]) <= q for v, q in zip(signals, quiet[1], strict=True)):
            rec["skipped"] = "the mouth does not move here"
        else:
            # Seeded by the window's start: the same window reads the same whatever --hop.
            est = estimate_offset(
                [v[part] for v in signals], audio[part], fps, max_lag_ms, surrogates, seed=start
            )
            rec |= {
                "offset_ms": round(est.offset_ms, 1),
                "confidence": round(est.confidence, 3),
                "offset_uncertainty_ms": round(est.offset_uncertainty_ms, 1),
                "chance_p": None if est.chance_p is None else round(est.chance_p, 3),
            }
        out.append(rec)
    return out


def av_sync(
    path: str | Path,
    finder: Any,
    max_lag_ms: float = 600.0,
    start_s: float | None = None,
    end_s: float | None = None,
    crop: int = 96,
    lips: Any = None,
    window_s: float | None = None,
    hop_s: float | None = None,
) -> dict[str, Any]:
    """Estimate the audio-visual offset of a talking-face video.

    Every frame in ``[start_s, end_s)`` is decoded; the longest face track gives the mouth
    signals (``mouth.mouth_track``), the audio track its speech-band amplitude; both are
    band-passed to ``SYLLABLE_BAND_HZ`` and cross-correlated (module docstring).

    Args:
        path: the video.
        finder: a face detector (``faces.detectors``).
        max_lag_ms: offsets tried, both ways.
        start_s, end_s: the time range.
        crop: side of the aligned crops the mouth openness is read from.
        lips: a :class:`deepfake_lab.video.lips.LipTracker`: adds the outer-lip opening of
            its 68 landmarks as a second mouth signal (``bench/avsync_signals.py`` measures
            what it buys). None: the crop's mouth openness alone.
        window_s, hop_s: also read the offset in sliding windows of this length
            (:func:`windowed_offsets`).

    Returns:
        ``{"path", "offset_ms", "confidence", "offset_uncertainty_ms", "chance_p",
        "band_hz", "frames", "track_frames", "fps", "mouth_signals", "lags_ms",
        "correlation", "chance_level", "times_s", "signals", "audio"}`` (the last three: the
        band-passed series that were correlated, for ``report.video_plots.plot_sync``),
        and with ``window_s`` ``"windows"``; positive ``offset_ms``: the audio lags the
        video.

    Raises:
        UserError: no audio, no face, or a clip too short for the lags.
    """
    from deepfake_lab.video.decode import probe, read_audio
    from deepfake_lab.video.mouth import mouth_track

    if not probe(path).has_audio:
        raise UserError(f"{path}: no audio track, so nothing to synchronise")
    mouth = mouth_track(path, finder, start_s, end_s, crop, lips)
    pcm, rate = read_audio(path, 16000)
    n = len(mouth.times_s)
    env = audio_envelope(pcm, rate, mouth.fps, n, mouth.times_s, onsets=False, amplitude=True)
    if is_flat(env):
        raise UserError(f"{path}: the audio is silent in the range read, so nothing to match")
    if all(is_flat(v) for v in mouth.signals.values()):
        raise UserError(f"{path}: the mouth never moves in the range read, so nothing to match")
    fps = mouth.fps
    signals = {k: band_limit(v, fps) for k, v in mouth.signals.items()}
    audio = band_limit(env, fps)
    est = estimate_offset(list(signals.values()), audio, fps, max_lag_ms, SURROGATES)
    windows = None
    if window_s is not None:
        windows = windowed_offsets(
            list(signals.values()),
            audio,
            mouth.present,
            mouth.times_s,
            fps,
            window_s,
            hop_s,
            max_lag_ms,
        )
    out = {
        "path": str(path),
        "offset_ms": round(est.offset_ms, 1),
        "confidence": round(est.confidence, 3),
        "offset_uncertainty_ms": round(est.offset_uncertainty_ms, 1),
        "chance_p": round(est.chance_p or 1.0, 3),
        "band_hz": [SYLLABLE_BAND_HZ[0], min(SYLLABLE_BAND_HZ[1], 0.45 * fps)],
        "frames": n,
        "track_frames": mouth.track_frames,
        "fps": mouth.fps,
        "mouth_signals": list(mouth.signals),
        "lags_ms": est.lags_ms,
        "correlation": est.correlation,
        "chance_level": est.chance_level,
        "times_s": [round(float(t), 4) for t in mouth.times_s],
        "signals": {k: [round(float(x), 4) for x in v] for k, v in signals.items()},
        "audio": [round(float(x), 4) for x in audio],
    }
    if windows is not None:
        out["windows"] = windows
    return out
