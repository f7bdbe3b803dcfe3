"""Video pictures: the sync plot and the timeline are PNGs that show what they say."""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image

from conftest import assert_figure_shows_data, assert_figure_shows_no_data
from deepfake_lab.report.video_plots import plot_sync, plot_timeline


def _reading(chance_level: float | None) -> dict:
    t = np.arange(75) / 25.0
    mouth = np.sin(2 * np.pi * 4 * t)
    lags = np.arange(-15, 16) * 40.0
    return {
        "path": "clip.mpg",
        "times_s": t.tolist(),
        "signals": {"openness": mouth.tolist(), "lip-gap": (0.8 * mouth).tolist()},
        "audio": np.roll(mouth, 2).tolist(),
        "lags_ms": lags.tolist(),
        "correlation": np.cos(lags / 1000 * 2 * np.pi * 4).tolist(),
        "offset_ms": 80.0,
        "offset_uncertainty_ms": 40.0,
        "confidence": 3.1,
        "chance_p": 0.02,
        "chance_level": chance_level,
    }


def _drawn_without_signals(reading: dict):
    """Draws the sync plot of the same reading with no samples: no mouth, audio or correlation
    curve (z-scoring an empty signal warns; that is not what is tested here)."""
    signals = {name: [] for name in reading["signals"]}
    empty = {"times_s": [], "signals": signals, "audio": [], "lags_ms": [], "correlation": []}

    def draw(path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return plot_sync({**reading, **empty}, path)

    return draw


def test_sync_plot_is_a_png_with_and_without_a_chance_level(tmp_path):
    for level in (0.6, None):
        reading = _reading(level)
        out = plot_sync(reading, tmp_path / f"sync_{level}.png")
        with Image.open(out) as im:
            assert im.format == "PNG" and im.size == (750, 520)
        # The curves are drawn: not just the axes, the offset line and the legend.
        assert_figure_shows_data(out, _drawn_without_signals(reading))


def test_timeline_is_a_png_also_without_faces(tmp_path):
    tracks = [{"id": 0, "times": [0.0, 0.04, 0.08], "scores": [0.1, 0.7, 0.4]}]
    no_scores = [{"id": 0, "times": [], "scores": []}]
    for name, data in (("one", tracks), ("none", [])):
        out = plot_timeline(data, 0.5, tmp_path / f"{name}.png", title=name)
        with Image.open(out) as im:
            assert im.format == "PNG" and im.size == (700, 320)
        check = assert_figure_shows_data if data else assert_figure_shows_no_data
        check(out, lambda p, name=name: plot_timeline(no_scores, 0.5, p, title=name))
