import numpy as np
import pytest

from conftest import assert_figure_shows_data, assert_figure_shows_no_data
from deepfake_lab.report.detection_plots import (
    plot_confusion,
    plot_pr,
    plot_reliability,
    plot_roc,
    plot_score_hist,
)


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
# Cases a ROC or PR curve can be drawn for (both classes, finite scores), and cases that give
# the reliability diagram and the histogram something to draw (at least one usable score).
CURVE_CASES = {"good", "other", "constant", "nan"}
SCORE_CASES = {"good", "one class", "constant", "nan", "logits"}


def _no_curves(curves):
    """The same curve names without their data: every curve is skipped as "no data"."""
    return {name: ([], []) for name in curves}


@pytest.mark.parametrize("log_x", [False, True])
def test_roc_and_pr(tmp_path, log_x):
    curves = {"good": GOOD, "other": _data(200, 1), **DEGENERATE}
    roc = plot_roc(curves, tmp_path / "roc.png", title="ROC", log_x=log_x)
    assert_figure_shows_data(roc, lambda p: plot_roc(_no_curves(curves), p, "ROC", log_x=log_x))
    pr = plot_pr(curves, tmp_path / "pr.png", title="PR")
    assert_figure_shows_data(pr, lambda p: plot_pr(_no_curves(curves), p, title="PR"))


@pytest.mark.parametrize("name", list(DEGENERATE))
def test_roc_pr_degenerate_alone(tmp_path, name):
    curves = {name: DEGENERATE[name]}
    check = assert_figure_shows_data if name in CURVE_CASES else assert_figure_shows_no_data
    roc = plot_roc(curves, tmp_path / "roc.png", log_x=True)
    check(roc, lambda p: plot_roc(_no_curves(curves), p, log_x=True))
    check(plot_pr(curves, tmp_path / "pr.png"), lambda p: plot_pr(_no_curves(curves), p))


def test_roc_pr_no_curves(tmp_path):
    roc = plot_roc({}, tmp_path / "roc.png", log_x=True)
    assert_figure_shows_no_data(roc, lambda p: plot_roc({"x": ([], [])}, p, log_x=True))
    assert_figure_shows_no_data(
        plot_pr({}, tmp_path / "pr.png"), lambda p: plot_pr({"x": ([], [])}, p)
    )


@pytest.mark.parametrize("case", ["good", *DEGENERATE, "logits"])
def test_reliability_and_hist(tmp_path, case):
    if case == "good":
        y, s = GOOD
    elif case == "logits":
        y, s = [0, 1, 0], [-3.0, 4.0, 0.5]  # out of [0, 1]: dropped by the reliability plot
    else:
        y, s = DEGENERATE[case]
    check = assert_figure_shows_data if case in SCORE_CASES else assert_figure_shows_no_data
    rel = plot_reliability(y, s, tmp_path / "rel.png", title=case)
    if case == "logits":  # one score left in [0, 1]: a marker on an empty bar (as small as
        # a legend swatch, so here the check tells data from no data, not from a lone legend)
        assert_figure_shows_data(
            rel, lambda p: plot_reliability([], [], p, title=case), min_extent=0
        )
    else:
        check(rel, lambda p: plot_reliability([], [], p, title=case))
    hist = plot_score_hist(y, s, tmp_path / "hist.png", threshold=0.5, title=case)
    check(hist, lambda p: plot_score_hist([], [], p, threshold=0.5, title=case))
    check(plot_score_hist(y, s, tmp_path / "hist2.png"), lambda p: plot_score_hist([], [], p))


@pytest.mark.parametrize(
    "conf", [{"tn": 50, "fp": 3, "fn": 7, "tp": 40}, {"tn": 0, "fp": 0, "fn": 0, "tp": 0}, {}]
)
def test_confusion(tmp_path, conf):
    cm = plot_confusion(conf, tmp_path / "sub" / "cm.png", title="confusion")
    check = assert_figure_shows_data if sum(conf.values()) else assert_figure_shows_no_data
    check(cm, lambda p: plot_confusion({}, p, title="confusion"))


def test_overwrites_existing_file(tmp_path):
    p = tmp_path / "roc.png"
    p.write_bytes(b"old")
    plot_roc({"good": GOOD}, p)
    assert_figure_shows_data(p, lambda q: plot_roc(_no_curves({"good": GOOD}), q))
