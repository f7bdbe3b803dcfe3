import io
import math

import numpy as np
import pytest
from PIL import Image

from deepfake_lab.report.plots import plot_loss_curves, smooth

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im.convert("RGB"))
    assert arr.shape[0] > 100 and arr.shape[1] > 100
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 5  # something is drawn
    return arr


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


@pytest.mark.parametrize("n", [50, 1, 0])
def test_plot_loss_curves_writes_png(tmp_path, n):
    p = plot_loss_curves(_records(n), tmp_path / "loss.png")
    _check_png(p)


def test_plot_loss_curves_selected_keys_and_bad_values(tmp_path):
    recs = _records(20)
    recs[3]["Loss/G"] = float("nan")
    recs[4]["Loss/G"] = float("inf")
    del recs[5]["Loss/D"]
    p = plot_loss_curves(recs, tmp_path / "g.png", keys=["Loss/G", "Loss/missing"])
    _check_png(p)
    # one panel for the "Loss" group: shorter than the default two-panel figure
    q = plot_loss_curves(recs, tmp_path / "all.png")
    assert Image.open(p).size[1] < Image.open(q).size[1]


def test_smooth_is_debiased():
    y = np.full(30, 5.0)
    np.testing.assert_allclose(smooth(y), 5.0)
    assert smooth(np.array([2.0]))[0] == 2.0
