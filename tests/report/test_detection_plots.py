import io

import numpy as np
import pytest
from PIL import Image

from deepfake_lab.report.detection_plots import (
    plot_confusion,
    plot_pr,
    plot_reliability,
    plot_roc,
    plot_score_hist,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im.convert("RGB"))
    assert arr.shape[0] > 100 and arr.shape[1] > 100
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 5  # something is drawn
    assert not list(path.parent.glob(f".{path.name}.*.tmp"))  # atomic write left no temp
    return arr


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = 1 / (1 + np.exp(-rng.normal(2.0 * y - 1.0, 1.0)))
    return y, s


GOOD = _data()
DEGENERATE = {
    "empty": ([], []),
    "one class": ([1, 1, 1], [0.2, 0.5, 0.9]),
    "constant": ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]),
    "nan": ([0, 1, 0, 1], [0.1, np.nan, np.inf, 0.8]),
    "mismatch": ([0, 1, 0], [0.1, 0.2]),
}


@pytest.mark.parametrize("log_x", [False, True])
def test_roc_and_pr(tmp_path, log_x):
    curves = {"good": GOOD, "other": _data(200, 1), **DEGENERATE}
    _check_png(plot_roc(curves, tmp_path / "roc.png", title="ROC", log_x=log_x))
    _check_png(plot_pr(curves, tmp_path / "pr.png", title="PR"))


@pytest.mark.parametrize("name", list(DEGENERATE))
def test_roc_pr_degenerate_alone(tmp_path, name):
    curves = {name: DEGENERATE[name]}
    _check_png(plot_roc(curves, tmp_path / "roc.png", log_x=True))
    _check_png(plot_pr(curves, tmp_path / "pr.png"))


def test_roc_pr_no_curves(tmp_path):
    _check_png(plot_roc({}, tmp_path / "roc.png", log_x=True))
    _check_png(plot_pr({}, tmp_path / "pr.png"))


@pytest.mark.parametrize("case", ["good", *DEGENERATE, "logits"])
def test_reliability_and_hist(tmp_path, case):
    if case == "good":
        y, s = GOOD
    elif case == "logits":
        y, s = [0, 1, 0], [-3.0, 4.0, 0.5]  # out of [0, 1]: dropped by the reliability plot
    else:
        y, s = DEGENERATE[case]
    _check_png(plot_reliability(y, s, tmp_path / "rel.png", title=case))
    _check_png(plot_score_hist(y, s, tmp_path / "hist.png", threshold=0.5, title=case))
    _check_png(plot_score_hist(y, s, tmp_path / "hist2.png"))


@pytest.mark.parametrize(
    "conf", [{"tn": 50, "fp": 3, "fn": 7, "tp": 40}, {"tn": 0, "fp": 0, "fn": 0, "tp": 0}, {}]
)
def test_confusion(tmp_path, conf):
    _check_png(plot_confusion(conf, tmp_path / "sub" / "cm.png", title="confusion"))


def test_overwrites_existing_file(tmp_path):
    p = tmp_path / "roc.png"
    p.write_bytes(b"old")
    plot_roc({"good": GOOD}, p)
    _check_png(p)
