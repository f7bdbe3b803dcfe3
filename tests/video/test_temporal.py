"""Temporal consistency: landmark jitter and appearance flicker on known signals."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_lab.video.temporal import appearance_flicker, landmark_jitter, track_consistency

BASE = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], np.float64)  # IOD 40


def _trajectory(t: int, noise: float, seed: int = 0) -> np.ndarray:
    """Smooth head motion (a slow arc) plus i.i.d. landmark noise of std ``noise`` px."""
    rng = np.random.default_rng(seed)
    k = np.arange(t)[:, None, None]
    motion = np.concatenate([3 * np.sin(k / 10), 2 * np.cos(k / 13)], axis=2)
    return BASE[None] + motion + rng.normal(0, noise, (t, 5, 2))


def test_jitter_ignores_smooth_motion_and_measures_shake():
    idx = np.arange(60)
    smooth = landmark_jitter(_trajectory(60, 0.0), idx)
    assert smooth < 0.002  # motion alone: nearly nothing left after the fit
    shaky = landmark_jitter(_trajectory(60, 2.0), idx)
    # i.i.d. noise of 2 px per axis: |residual| RMS ~ 2 * sqrt(2) * sqrt(1 - 3/7) (the fit
    # absorbs part of it), over an IOD of 40 px.
    expected = 2 * np.sqrt(2) * np.sqrt(1 - 3 / 7) / 40
    assert shaky == pytest.approx(expected, rel=0.25)
    assert landmark_jitter(_trajectory(60, 4.0), idx) > 1.6 * shaky


def test_jitter_uses_runs_of_consecutive_frames_only():
    lm = _trajectory(20, 0.0)
    lm[10:] += 25  # a jump across a gap (a missed face) must not count as jitter
    idx = np.r_[np.arange(10), np.arange(15, 25)]
    assert landmark_jitter(lm, idx) < 0.002
    assert landmark_jitter(lm[:4], idx[:4]) is None  # no run long enough


def test_flicker_separates_alternation_from_smooth_drift():
    t = 12
    base = np.full((t, 16, 16, 3), 100, np.uint8)
    drift = base + np.arange(t, dtype=np.uint8)[:, None, None, None] * 4  # steady brightening
    flick = base + (np.arange(t) % 2 * 20).astype(np.uint8)[:, None, None, None]
    idx = np.arange(t)
    f_static, hf_static = appearance_flicker(base, idx)
    f_drift, hf_drift = appearance_flicker(drift, idx)
    f_flick, hf_flick = appearance_flicker(flick, idx)
    assert f_static == 0 and hf_static == 0
    assert f_drift == pytest.approx(4 / 255, rel=0.05) and hf_drift < 1e-9
    assert f_flick == pytest.approx(20 / 255, rel=0.05)
    assert hf_flick == pytest.approx(20 / 255, rel=0.05)
    assert appearance_flicker(base[:1], idx[:1]) == (None, None)


def test_track_consistency_bundles_both():
    t = 10
    c = track_consistency(_trajectory(t, 1.0), np.zeros((t, 8, 8, 3), np.uint8), np.arange(t))
    assert c.frames == t and c.flicker == 0 and c.landmark_jitter > 0
    assert set(c.to_dict()) == {"landmark_jitter", "flicker", "flicker_hf", "frames"}
