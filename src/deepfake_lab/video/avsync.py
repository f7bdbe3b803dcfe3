"""Audio-visual sync, the classical way: a mouth signal from a face track against the
audio's speech envelope, cross-correlated over a range of lags.

- Mouth signals (``mouth``): the crop's mouth openness and, with the ``lips`` extra, the
  outer-lip gap of dlib's 68 landmarks; their correlation curves are averaged.
- Audio side (``sync_signals``): the speech band's amplitude envelope, floored 60 dB
  below its loudest window; both sides band-passed to 2-7 Hz, the syllable rate.
  ``bench/avsync_signals.py`` measures every variant on the shared clips; this one moved
  the untouched GRID/SadTalker readings from -254/-15/+8 ms to -27/+5/+15 ms and recovers
  every +-200/400 ms shift within 2 ms. ``bench/avsync_content.py`` adds what phones
  recognised in the audio predict of the lips' shape; it did not help (README, "Video").
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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_lab.errors import UserError, without_path
from deepfake_lab.video.sync_signals import (
    SYLLABLE_BAND_HZ,
    audio_envelope,
    band_limit,
    is_flat,
    phase_randomised,
    zscore,
)

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


def estimate_offset(
    video_signal: np.ndarray | list[np.ndarray],
    audio_signal: np.ndarray | list[np.ndarray],
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
        audio_signal: (T,) e.g. ``audio_envelope``; or one such signal per video signal,
            each correlated with its own (pairs such as lip rounding with a rounding
            signal from the audio).
        fps: frames per second of both.
        max_lag_ms: lags tried, both ways.
        surrogates: phase-randomised versions of the audio signal to compute ``chance_p``
            from (0: skip).
        seed: their random generator's seed.

    Returns:
        The estimate (see the module docstring for sign, confidence and uncertainty).
    """
    signals = [video_signal] if isinstance(video_signal, np.ndarray) else list(video_signal)
    vs = [zscore(v) for v in signals]
    if isinstance(audio_signal, np.ndarray):
        audios = [zscore(audio_signal)] * len(vs)
    else:
        audios = [zscore(x) for x in audio_signal]
    if len(audios) != len(vs):
        raise UserError(
            f"{len(vs)} video signals but {len(audios)} audio signals to pair them with"
        )
    a = audios[0]
    if any(len(x) != len(a) for x in vs + audios):
        raise UserError(
            f"signals differ in length ({[len(v) for v in vs]} vs "
            f"{[len(x) for x in audios]} frames)"
        )
    max_lag = check_max_lag(max_lag_ms, fps)
    if len(a) < 2 * max_lag + 8:
        raise UserError(
            f"{len(a)} frames are too few for lags of +-{max_lag_ms:.0f} ms; use a longer clip"
        )
    lags = np.arange(-max_lag, max_lag + 1)
    corr = np.mean([_xcorr(v, x, lags) for v, x in zip(vs, audios, strict=True)], axis=0)
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
        # The audio signals of one draw share their random phases: signals read from the
        # same audio stay related (an independent surrogate each would average out and
        # understate chance), and the same signal given twice gets one surrogate.
        null = []
        for _ in range(surrogates):
            fake = phase_randomised(audios, rng)
            curves = [_xcorr(v, x, lags) for v, x in zip(vs, fake, strict=True)]
            null.append(np.mean(curves, axis=0).max())
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
    progress: Callable[[int, int | None], None] | None = None,
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
        progress: ``progress(frames done, frames expected or None)`` while decoding.

    Returns:
        ``{"path", "offset_ms", "confidence", "offset_uncertainty_ms", "chance_p",
        "band_hz", "frames", "track_frames", "fps", "mouth_signals", "lags_ms",
        "correlation", "chance_level", "times_s", "signals", "audio"}`` (the last three: the
        band-passed series that were correlated, for ``report.video_plots.plot_sync``),
        ``"decode_error"`` (None, or why decoding stopped early: the frames before the
        damage were read), and with ``window_s`` ``"windows"``; positive ``offset_ms``: the
        audio lags the video.

    Raises:
        UserError: no audio, no face, or a clip too short for the lags.
    """
    from deepfake_lab.video.decode import probe, read_audio_until_damage
    from deepfake_lab.video.mouth import mouth_track

    if not probe(path).has_audio:
        raise UserError(f"{path}: no audio track, so nothing to synchronise")
    mouth = mouth_track(path, finder, start_s, end_s, crop, lips, progress=progress)
    pcm, rate, audio_error = read_audio_until_damage(path, 16000, start_s, end_s)
    # The PCM starts at start_s: frame times are shifted to match.
    since = mouth.times_s - (start_s or 0.0)
    n = len(since)
    if audio_error is not None:  # only the frames the decoded audio covers
        n = int(np.sum(since + 1 / mouth.fps <= len(pcm) / rate))
    errors = (mouth.error, audio_error)
    damage = "; ".join(without_path(str(e), path) for e in errors if e is not None) or None
    try:
        if n == 0:
            raise UserError(f"{path}: no audio decodes in the range read")
        times, present = mouth.times_s[:n], mouth.present[:n]
        mouth_signals = {k: v[:n] for k, v in mouth.signals.items()}
        env = audio_envelope(pcm, rate, mouth.fps, n, since[:n], onsets=False, amplitude=True)
        if is_flat(env):
            raise UserError(f"{path}: the audio is silent in the range read, so nothing to match")
        if all(is_flat(v) for v in mouth_signals.values()):
            raise UserError(f"{path}: the mouth never moves in the range read, so nothing to match")
        fps = mouth.fps
        signals = {k: band_limit(v, fps) for k, v in mouth_signals.items()}
        audio = band_limit(env, fps)
        est = estimate_offset(list(signals.values()), audio, fps, max_lag_ms, SURROGATES)
        windows = None
        if window_s is not None:
            windows = windowed_offsets(
                list(signals.values()),
                audio,
                present,
                times,
                fps,
                window_s,
                hop_s,
                max_lag_ms,
            )
    except UserError as exc:
        if damage is None:
            raise
        # Say why there was so little to read.
        raise UserError(f"{exc} (read up to the damage: {damage})") from None
    out = {
        "path": str(path),
        "offset_ms": round(est.offset_ms, 1),
        "confidence": round(est.confidence, 3),
        "offset_uncertainty_ms": round(est.offset_uncertainty_ms, 1),
        "chance_p": round(est.chance_p or 1.0, 3),
        "band_hz": [SYLLABLE_BAND_HZ[0], min(SYLLABLE_BAND_HZ[1], 0.45 * fps)],
        "frames": n,
        "track_frames": int(np.sum(present)),
        "fps": mouth.fps,
        "mouth_signals": list(mouth.signals),
        "lags_ms": est.lags_ms,
        "correlation": est.correlation,
        "chance_level": est.chance_level,
        "times_s": [round(float(t), 4) for t in times],
        "signals": {k: [round(float(x), 4) for x in v] for k, v in signals.items()},
        "audio": [round(float(x), 4) for x in audio],
        "decode_error": damage,
    }
    if windows is not None:
        out["windows"] = windows
    return out
