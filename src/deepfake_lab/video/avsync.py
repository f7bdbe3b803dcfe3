"""Audio-visual sync, the classical way: a mouth signal from a face track against the
audio's energy envelope, cross-correlated over a range of lags.

- Mouth openness (what ``av_sync`` uses): per frame, the darkness of the mouth region of
  the aligned crop (minus its 10th-percentile luma: an open mouth shows a dark cavity);
  FFHQ alignment puts the mouth at a fixed place, so head motion is already removed.
  ``mouth_motion`` (mean absolute luma change) is the alternative.
- Lip opening (optional, ``lips.LipTracker``): the outer-lip gap of dlib's 68 landmarks,
  a second mouth signal whose correlation curve is averaged with the openness's.
  ``bench/avsync_signals.py`` measures each signal and variant on the shared clips.
- Audio envelope: RMS energy of the speech band (300-3400 Hz) in windows centred on each
  video frame, in dB (``onsets=True``: its positive first difference instead).
- Measured on a GRID clip with its audio shifted by -400..+400 ms (rebuilt with PyAV):
  openness against energy recovers every shift within 5 ms, reads the untouched clip near
  0 ms, and gives another speaker's audio a lower confidence; motion against onsets also
  recovers the shifts but reads the untouched clip at -450 ms and does not separate the
  other speaker, so openness/energy is the default.
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
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import butter, sosfiltfilt

from deepfake_lab.color import luma
from deepfake_lab.errors import UserError

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


def _mouth_luma(crops: np.ndarray) -> np.ndarray:
    """(T, h, w) luma of the mouth region (``MOUTH_ROWS`` x ``MOUTH_COLS``) of aligned crops."""
    s = crops.shape[1]
    r0, r1 = (int(round(f * s)) for f in MOUTH_ROWS)
    c0, c1 = (int(round(f * s)) for f in MOUTH_COLS)
    return luma(crops[:, r0:r1, c0:c1])


def mouth_motion(crops: np.ndarray) -> np.ndarray:
    """Mouth-region motion per frame of aligned crops.

    Args:
        crops: (T, S, S, 3) uint8 FFHQ-aligned face crops of one track, consecutive frames.

    Returns:
        (T,) float, mean absolute luma change in the mouth region against the previous
        frame (the first frame repeats the second's value).
    """
    if crops.shape[0] < 2:
        raise UserError("mouth motion needs at least 2 frames")
    y = _mouth_luma(crops)
    d = np.abs(np.diff(y, axis=0)).mean(axis=(1, 2))
    return np.concatenate([d[:1], d])


def mouth_openness(crops: np.ndarray) -> np.ndarray:
    """Mouth openness per frame: minus the 10th-percentile luma of the mouth region.

    Args:
        crops: (T, S, S, 3) uint8 FFHQ-aligned crops of one track.

    Returns:
        (T,) float; higher when a dark mouth cavity shows.
    """
    y = _mouth_luma(crops)
    return -np.percentile(y.reshape(len(y), -1), 10, axis=1)


def audio_envelope(
    pcm: np.ndarray,
    rate: int,
    fps: float,
    n_frames: int,
    times_s: np.ndarray | None = None,
    onsets: bool = True,
    window_frames: float = 2.0,
) -> np.ndarray:
    """Speech-band onset envelope sampled at the video frames.

    Args:
        pcm: (N,) mono float audio; sample ``i`` at ``i / rate`` s.
        rate: its sample rate (Hz).
        fps: video frame rate.
        n_frames: frames to sample.
        times_s: start time of each frame (default ``t / fps``); windows are centred half
            a frame later.
        onsets: return the positive first difference of the energy (True) or the energy
            in dB itself (False).
        window_frames: length of the energy window, in frames (longer: smoother).

    Returns:
        (n_frames,) float: band energy in dB, or its positive first difference.
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
        energy[i] = 10 * np.log10(np.mean(seg**2) + 1e-10) if len(seg) else -100.0
    if not onsets:
        return energy
    return np.maximum(np.diff(energy, prepend=energy[0]), 0.0)


def _z(x: np.ndarray) -> np.ndarray:
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


def estimate_offset(
    video_signal: np.ndarray | list[np.ndarray],
    audio_signal: np.ndarray,
    fps: float,
    max_lag_ms: float = 600.0,
) -> SyncEstimate:
    """Offset between a video-side and an audio-side signal sampled at the same frames.

    Args:
        video_signal: (T,) e.g. ``mouth_openness``, or several such signals of the same
            mouth: their correlation curves are averaged, so evidence they share adds up and
            noise they do not share averages out.
        audio_signal: (T,) e.g. ``audio_envelope``.
        fps: frames per second of both.
        max_lag_ms: lags tried, both ways.

    Returns:
        The estimate (see the module docstring for sign, confidence and uncertainty).
    """
    signals = [video_signal] if isinstance(video_signal, np.ndarray) else list(video_signal)
    vs, a = [_z(v) for v in signals], _z(audio_signal)
    if any(len(v) != len(a) for v in vs):
        raise UserError(f"signals differ in length ({[len(v) for v in vs]} vs {len(a)} frames)")
    max_lag = int(round(max_lag_ms / 1000 * fps))
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
    frame_ms = 1000 / fps
    return SyncEstimate(
        offset_ms=float((lags[i] + shift) * frame_ms),
        confidence=float((corr[i] - med) / mad),
        offset_uncertainty_ms=float(max(0.5, (hi - lo + 1) / 2) * frame_ms),
        lags_ms=[float(k * frame_ms) for k in lags],
        correlation=[float(c) for c in corr],
    )


@dataclass
class MouthTrack:
    """The mouth of a video's main face track, one value per decoded frame.

    Attributes:
        signals: name -> (T,) signal: ``"openness"`` (crop darkness), ``"lip-gap"`` (with
            a lip tracker); frames where the track was missed are interpolated.
        crops: (P, S, S, 3) uint8 aligned crops of the P frames the track was found in.
        times_s: (T,) start time of every decoded frame.
        fps: the video's frame rate.
        track_frames: P.
    """

    signals: dict[str, np.ndarray]
    crops: np.ndarray
    times_s: np.ndarray
    fps: float
    track_frames: int


def mouth_track(
    path: str | Path,
    finder: Any,
    start_s: float | None = None,
    end_s: float | None = None,
    crop: int = 96,
    lips: Any = None,
) -> MouthTrack:
    """Decode every frame in ``[start_s, end_s)`` and follow the mouth of the longest face
    track (see :func:`av_sync` for the arguments).

    Raises:
        UserError: no face in the video.
    """
    from deepfake_lab.faces.align import align_face
    from deepfake_lab.video.decode import iter_frames, probe
    from deepfake_lab.video.tracks import link_tracks

    info = probe(path)
    records, crops, gaps = [], {}, {}
    for frame in iter_frames(path, 1, start_s, end_s):
        faces = finder.detect(frame.image)[:4]
        records.append((frame.index, frame.time_s, faces))
        for f in faces:
            crops[(frame.index, id(f))] = align_face(frame.image, f.landmarks, crop)[0]
            if lips is not None:
                gaps[(frame.index, id(f))] = lips.opening(frame.image, f)
    tracks = link_tracks(records, max_gap=3)
    if not tracks:
        raise UserError(f"{path}: no face found, so no mouth to follow")
    main = max(tracks, key=len)
    index = [r[0] for r in records]
    keys = {tf.frame_index: (tf.frame_index, id(tf.face)) for tf in main.faces}
    present = [i for i in index if i in keys]
    stack = np.stack([crops[keys[i]] for i in present])
    per_frame = {"openness": mouth_openness(stack)}
    if lips is not None:
        per_frame["lip-gap"] = np.array([gaps[keys[i]] for i in present])
    # Frames where the track was missed get the signal interpolated from their neighbours.
    signals = {k: np.interp(index, present, v) for k, v in per_frame.items()}
    times = np.array([r[1] for r in records])
    return MouthTrack(signals, stack, times, info.fps, len(main))


def av_sync(
    path: str | Path,
    finder: Any,
    max_lag_ms: float = 600.0,
    start_s: float | None = None,
    end_s: float | None = None,
    crop: int = 96,
    lips: Any = None,
) -> dict[str, Any]:
    """Estimate the audio-visual offset of a talking-face video.

    Every frame in ``[start_s, end_s)`` is decoded; the longest face track gives the mouth
    signals (:func:`mouth_track`), the audio track its speech-band energy.

    Args:
        path: the video.
        finder: a face detector (``faces.detectors``).
        max_lag_ms: offsets tried, both ways.
        start_s, end_s: the time range.
        crop: side of the aligned crops the mouth openness is read from.
        lips: a :class:`deepfake_lab.video.lips.LipTracker`: adds the outer-lip opening of
            its 68 landmarks as a second mouth signal (``bench/avsync_signals.py`` measures
            what it buys). None: the crop's mouth openness alone.

    Returns:
        ``{"path", "offset_ms", "confidence", "offset_uncertainty_ms", "frames",
        "track_frames", "fps", "mouth_signals", "lags_ms", "correlation"}``; positive
        ``offset_ms``: the audio lags the video.

    Raises:
        UserError: no audio, no face, or a clip too short for the lags.
    """
    from deepfake_lab.video.decode import probe, read_audio

    if not probe(path).has_audio:
        raise UserError(f"{path}: no audio track, so nothing to synchronise")
    mouth = mouth_track(path, finder, start_s, end_s, crop, lips)
    pcm, rate = read_audio(path, 16000)
    n = len(mouth.times_s)
    env = audio_envelope(pcm, rate, mouth.fps, n, times_s=mouth.times_s, onsets=False)
    est = estimate_offset(list(mouth.signals.values()), env, mouth.fps, max_lag_ms)
    return {
        "path": str(path),
        "offset_ms": round(est.offset_ms, 1),
        "confidence": round(est.confidence, 3),
        "offset_uncertainty_ms": round(est.offset_uncertainty_ms, 1),
        "frames": n,
        "track_frames": mouth.track_frames,
        "fps": mouth.fps,
        "mouth_signals": list(mouth.signals),
        "lags_ms": est.lags_ms,
        "correlation": est.correlation,
    }
