"""Temporal consistency of a face track: landmark jitter and appearance flicker.

Real footage moves smoothly between frames; frame-by-frame synthesis and face swaps often
do not. Two numbers per track:

- **Landmark jitter**: the five landmarks' trajectories minus a smooth fit
  (Savitzky-Golay, a local quadratic over ``window`` frames, which follows head motion but
  not frame-to-frame shake), as the RMS residual in inter-ocular distances. Computed over
  runs of consecutive sampled frames only (a missed detection splits the run).
- **Appearance flicker**: on consecutive aligned crops (luma in [0, 1]), the mean absolute
  frame difference, and its high-pass part ``|Y_t - (Y_t-1 + Y_t+1) / 2|``, which cancels
  smooth changes (slow lighting drift, steady motion) and keeps alternation (flicker).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import savgol_filter

from deepfake_lab.color import luma


@dataclass
class Consistency:
    """Temporal-consistency numbers of one track (None where too few frames).

    Attributes:
        landmark_jitter: RMS landmark residual after removing smooth motion, in
            inter-ocular distances.
        flicker: mean absolute luma difference of consecutive crops, in [0, 1].
        flicker_hf: mean absolute second difference (alternation), in [0, 1].
        frames: faces the numbers were computed from.
    """

    landmark_jitter: float | None
    flicker: float | None
    flicker_hf: float | None
    frames: int

    def to_dict(self) -> dict:
        return asdict(self)


def _runs(frame_indices: np.ndarray, step: int) -> list[slice]:
    """Slices of consecutive samples (index gaps of exactly ``step``)."""
    breaks = np.flatnonzero(np.diff(frame_indices) != step) + 1
    edges = [0, *breaks.tolist(), len(frame_indices)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def landmark_jitter(
    landmarks: np.ndarray, frame_indices: np.ndarray, step: int = 1, window: int = 7
) -> float | None:
    """RMS landmark residual after a smooth fit, in inter-ocular distances.

    Args:
        landmarks: (T, 5, 2) landmarks of one track, eyes first.
        frame_indices: (T,) their frame indices.
        step: the frame stride between consecutive samples.
        window: frames of the local quadratic fit (odd, >= 5).

    Returns:
        The jitter, or None when no run of consecutive samples has ``window`` frames.
    """
    lm = np.asarray(landmarks, np.float64)
    idx = np.asarray(frame_indices)
    window = max(5, window | 1)
    residuals, iods = [], []
    for run in _runs(idx, step):
        seg = lm[run]
        if len(seg) < window:
            continue
        smooth = savgol_filter(seg, window, polyorder=2, axis=0, mode="interp")
        residuals.append(np.linalg.norm(seg - smooth, axis=2).ravel())
        iods.append(np.linalg.norm(seg[:, 0] - seg[:, 1], axis=1))
    if not residuals:
        return None
    iod = float(np.median(np.concatenate(iods)))
    return float(np.sqrt(np.mean(np.concatenate(residuals) ** 2)) / max(iod, 1.0))


def appearance_flicker(
    crops: np.ndarray, frame_indices: np.ndarray, step: int = 1
) -> tuple[float | None, float | None]:
    """Mean absolute first and second temporal differences of aligned crops' luma.

    Args:
        crops: (T, H, W, 3) uint8 aligned crops of one track.
        frame_indices: (T,) their frame indices.
        step: the frame stride between consecutive samples.

    Returns:
        ``(flicker, flicker_hf)`` in [0, 1]; None where no run is long enough (2 and 3
        frames).
    """
    y = luma(crops) / 255.0
    first, second = [], []
    for run in _runs(np.asarray(frame_indices), step):
        seg = y[run]
        if len(seg) >= 2:
            first.append(np.abs(np.diff(seg, axis=0)).mean(axis=(1, 2)))
        if len(seg) >= 3:
            second.append(np.abs(seg[1:-1] - (seg[:-2] + seg[2:]) / 2).mean(axis=(1, 2)))
    f1 = float(np.mean(np.concatenate(first))) if first else None
    f2 = float(np.mean(np.concatenate(second))) if second else None
    return f1, f2


def track_consistency(
    landmarks: np.ndarray,
    crops: np.ndarray,
    frame_indices: np.ndarray,
    step: int = 1,
    window: int = 7,
) -> Consistency:
    """Both measures for one track (see the module docstring)."""
    flicker, hf = appearance_flicker(crops, frame_indices, step)
    jitter = landmark_jitter(landmarks, frame_indices, step, window)
    return Consistency(jitter, flicker, hf, int(len(frame_indices)))
