"""The figure check of conftest.py: it passes the report figures with their data and rejects
the same figures with the data removed, which the old "more than 5 colours" check passed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from conftest import (
    assert_figure_shows_data,
    assert_figure_shows_no_data,
    figure_data_pixels,
    read_png,
)
from deepfake_lab.report.detection_plots import (
    plot_confusion,
    plot_pr,
    plot_reliability,
    plot_roc,
    plot_score_hist,
)
from deepfake_lab.report.figure import new_figure, save_png
from deepfake_lab.report.plots import plot_loss_curves
from deepfake_lab.report.video_plots import plot_timeline

RNG = np.random.default_rng(0)
Y = RNG.integers(0, 2, 200)
S = 1 / (1 + np.exp(-RNG.normal(2.0 * Y - 1.0, 1.0)))
LOSS = [{"kimg": 0.5 * i, "Loss/G": 1 + math.sin(i / 5), "Loss/D": 1.3} for i in range(40)]
NO_LOSS = [{"kimg": r["kimg"], "Loss/G": math.nan, "Loss/D": math.nan} for r in LOSS]
TRACK = {"id": 0, "times": [0.0, 0.5, 1.0, 1.5], "scores": [0.1, 0.7, 0.4, 0.9]}

# name -> (draw with data, draw the same figure without data); each takes the output path.
FIGURES = {
    "loss curves": (
        lambda p: plot_loss_curves(LOSS, p),
        lambda p: plot_loss_curves(NO_LOSS, p),
    ),
    "roc": (lambda p: plot_roc({"a": (Y, S)}, p), lambda p: plot_roc({"a": ([], [])}, p)),
    "pr": (lambda p: plot_pr({"a": (Y, S)}, p), lambda p: plot_pr({"a": ([], [])}, p)),
    "reliability": (
        lambda p: plot_reliability(Y, S, p),
        lambda p: plot_reliability([], [], p),
    ),
    "histogram": (
        lambda p: plot_score_hist(Y, S, p, threshold=0.5),
        lambda p: plot_score_hist([], [], p, threshold=0.5),
    ),
    "confusion": (
        lambda p: plot_confusion({"tn": 50, "fp": 3, "fn": 7, "tp": 40}, p),
        lambda p: plot_confusion({}, p),
    ),
    "timeline": (
        lambda p: plot_timeline([TRACK], 0.5, p),
        lambda p: plot_timeline([{**TRACK, "times": [], "scores": []}], 0.5, p),
    ),
}


def _old_check(path) -> bool:
    """The check this one replaces: a PNG over 100 px a side with more than 5 colours."""
    arr = read_png(path)
    return len(np.unique(arr.reshape(-1, 3), axis=0)) > 5


@pytest.mark.parametrize("name", list(FIGURES))
def test_passes_a_figure_with_data_and_rejects_it_without(tmp_path, name):
    draw, draw_without_data = FIGURES[name]
    assert_figure_shows_data(draw(tmp_path / "data.png"), draw_without_data)

    empty = draw_without_data(tmp_path / "empty.png")
    assert _old_check(empty)  # the old check took the empty figure for a picture
    with pytest.raises(AssertionError, match="hardly differs from the same figure"):
        assert_figure_shows_data(empty, draw_without_data)
    assert_figure_shows_no_data(empty, draw_without_data)
    with pytest.raises(AssertionError, match="data pixels for no data"):
        assert_figure_shows_no_data(draw(tmp_path / "data.png"), draw_without_data)


@pytest.mark.parametrize("name", ["loss curves", "roc", "timeline"])
def test_rejects_lines_that_lost_their_values_but_kept_their_labels(tmp_path, monkeypatch, name):
    """A regression that keeps every label and legend entry but draws no values."""
    draw, draw_without_data = FIGURES[name]
    plot = Axes.plot

    def plot_without_values(self, *args, **kwargs):
        args = [a if isinstance(a, str) else np.full(np.shape(a), np.nan) for a in args]
        return plot(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", plot_without_values)
    png = draw(tmp_path / "broken.png")
    assert figure_data_pixels(png, draw_without_data, min_extent=0) > 0  # its legend
    with pytest.raises(AssertionError, match="hardly differs"):
        assert_figure_shows_data(png, draw_without_data)


def _roc_like(path, *, curve: bool):
    """A ROC-like figure whose legend names a curve; ``curve=False`` leaves the line out."""
    fig = new_figure(5.0, 4.4)
    ax = fig.subplots()
    x = np.linspace(0, 1, 50)
    y = np.sqrt(x) if curve else np.full_like(x, np.nan)
    ax.plot(x, y, color="C0", lw=1.6, label="a (AUC 0.850)")
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false-positive rate", ylabel="true-positive rate")
    ax.legend(loc="lower right", fontsize="small", frameon=False)
    ax.grid(True, alpha=0.3)
    return save_png(fig, path)


def test_a_legend_without_its_curve_is_not_data(tmp_path):
    no_data = FIGURES["roc"][1]
    legend_only = _roc_like(tmp_path / "legend.png", curve=False)
    assert figure_data_pixels(legend_only, no_data, min_extent=0) > 0  # the swatch is coloured
    assert figure_data_pixels(legend_only, no_data) == 0  # but no mark over 40 px across
    with pytest.raises(AssertionError, match="hardly differs"):
        assert_figure_shows_data(legend_only, no_data)
    assert_figure_shows_data(_roc_like(tmp_path / "curve.png", curve=True), no_data)


def test_a_redraw_of_another_size_is_a_mistake_of_the_test(tmp_path):
    png = FIGURES["roc"][0](tmp_path / "roc.png")
    with pytest.raises(AssertionError, match="should keep the layout"):
        assert_figure_shows_data(png, lambda p: plot_confusion({}, p))


def test_read_png_refuses_what_is_not_a_figure(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(AssertionError, match="is not a PNG"):
        read_png(tmp_path / "x.png")
    tiny = Figure(figsize=(0.5, 0.5), dpi=100)
    tiny.savefig(tmp_path / "tiny.png")
    with pytest.raises(AssertionError, match="is only"):
        read_png(tmp_path / "tiny.png")
