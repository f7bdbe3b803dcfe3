import math

import numpy as np
import pytest
from PIL import Image

from conftest import assert_figure_shows_data, assert_figure_shows_no_data
from deepfake_lab.report.plots import plot_loss_curves, smooth


def _records(n):
    return [
        {
            "kimg": 0.5 * i,
            "Loss/G": 1.0 + math.sin(i / 5),
            "Loss/D": 1.3 - 0.01 * i,
            "D/real": 0.4,
            "D/fake": -0.2,
            "note": "text is ignored",
        }
        for i in range(n)
    ]


def _without_data(records):
    """The same records with every metric NaN: the figure keeps its panels, loses its lines."""
    return [{k: v if k in ("kimg", "note") else math.nan for k, v in r.items()} for r in records]


@pytest.mark.parametrize("n", [50, 1, 0])
def test_plot_loss_curves_writes_png(tmp_path, n):
    recs = _records(n)
    p = plot_loss_curves(recs, tmp_path / "loss.png")

    def without_data(out):
        return plot_loss_curves(_without_data(recs), out)

    if n == 0:
        assert_figure_shows_no_data(p, without_data)
    elif n == 1:  # one marker per metric: count small marks too, more than the legend's
        assert_figure_shows_data(p, without_data, min_pixels=500, min_extent=0)
    else:
        assert_figure_shows_data(p, without_data)


def test_plot_loss_curves_selected_keys_and_bad_values(tmp_path):
    recs = _records(20)
    recs[3]["Loss/G"] = float("nan")
    recs[4]["Loss/G"] = float("inf")
    del recs[5]["Loss/D"]
    keys = ["Loss/G", "Loss/missing"]
    p = plot_loss_curves(recs, tmp_path / "g.png", keys=keys)
    assert_figure_shows_data(p, lambda out: plot_loss_curves(_without_data(recs), out, keys=keys))
    # one panel for the "Loss" group: shorter than the default two-panel figure
    q = plot_loss_curves(recs, tmp_path / "all.png")
    assert Image.open(p).size[1] < Image.open(q).size[1]


def test_smooth_is_debiased():
    y = np.full(30, 5.0)
    np.testing.assert_allclose(smooth(y), 5.0)
    assert smooth(np.array([2.0]))[0] == 2.0
