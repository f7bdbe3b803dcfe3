import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from deepfake_lab.metrics.detection import (
    INTERVAL_KEYS,
    _weighted_metrics,
    bootstrap_intervals,
    detection_metrics,
    equal_error_rate,
    expected_calibration_error,
    per_source_table,
    reliability_bins,
)


def _gaussians(n, d, seed=0):
    """n reals ~ N(-d/2, 1) and n fakes ~ N(d/2, 1)."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n, int), np.ones(n, int)]
    s = np.r_[rng.normal(-d / 2, 1, n), rng.normal(d / 2, 1, n)]
    return y, s


def test_perfect_separation():
    y = np.array([0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.9])
    m = detection_metrics(y, s, 0.5)
    assert m["roc_auc"] == 1.0 and m["ap"] == 1.0 and m["eer"] == 0.0
    assert 0.3 < m["eer_threshold"] <= 0.7
    assert m["accuracy"] == m["precision"] == m["recall"] == m["f1"] == 1.0
    assert m["confusion"] == {"tn": 3, "fp": 0, "fn": 0, "tp": 2}
    assert (m["n"], m["n_real"], m["n_fake"]) == (5, 3, 2)
    assert m["notes"] == []


def test_reversed_scores():
    y = np.array([0, 0, 1, 1])
    m = detection_metrics(y, np.array([0.9, 0.8, 0.2, 0.1]), 0.5)
    assert m["roc_auc"] == 0.0 and m["eer"] == 1.0
    assert m["accuracy"] == 0.0 and m["precision"] == 0.0 and m["f1"] == 0.0


def test_random_scores_are_chance():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 20000)
    m = detection_metrics(y, rng.random(20000), 0.5)
    assert m["roc_auc"] == pytest.approx(0.5, abs=0.02)
    assert m["eer"] == pytest.approx(0.5, abs=0.02)
    assert m["ap"] == pytest.approx(y.mean(), abs=0.02)


def test_symmetric_gaussians_known_eer_and_auc():
    d = 2.0
    y, s = _gaussians(50000, d)
    m = detection_metrics(y, s, 0.0)
    # Equal variances: FPR = FNR at the midpoint 0, where both are Phi(-d/2).
    assert m["eer"] == pytest.approx(norm.cdf(-d / 2), abs=0.005)
    assert m["eer_threshold"] == pytest.approx(0.0, abs=0.03)
    assert m["roc_auc"] == pytest.approx(norm.cdf(d / math.sqrt(2)), abs=0.005)
    assert m["recall"] == pytest.approx(norm.cdf(d / 2), abs=0.01)


@pytest.mark.parametrize(
    "y, s, eer, thr",
    [
        # vertical ROC segment at FPR 1/3: crossing a third of the way from score 2 to 1.5
        ([0, 0, 0, 1, 1], [0.0, 1.0, 2.0, 1.5, 3.0], 1 / 3, 2 - 0.5 / 3),
        # a real and a fake tied at 1: diagonal segment from (0, .5) to (.5, 1), crossed halfway
        ([0, 0, 1, 1], [0.0, 1.0, 1.0, 2.0], 0.25, 1.5),
    ],
)
def test_eer_by_hand(y, s, eer, thr):
    got_eer, got_thr = equal_error_rate(y, s)
    assert got_eer == pytest.approx(eer, abs=1e-12)
    assert got_thr == pytest.approx(thr, abs=1e-12)


def test_threshold_metrics_by_hand():
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.4, 0.5, 0.8, 0.3, 0.5, 0.9])
    m = detection_metrics(y, s, 0.5)  # 0.5 itself counts as fake
    assert m["confusion"] == {"tn": 2, "fp": 2, "fn": 1, "tp": 2}
    assert m["accuracy"] == pytest.approx(4 / 7)
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounding makes ties
    thr = float(rng.normal(0.3, 0.3))
    pred = (s >= thr).astype(int)
    m = detection_metrics(y, s, thr)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert m["ap"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(precision_score(y, pred, zero_division=0))
    assert m["recall"] == pytest.approx(recall_score(y, pred, zero_division=0))
    assert m["f1"] == pytest.approx(f1_score(y, pred, zero_division=0))
    tn, fp, fn, tp = confusion_matrix(y, pred).ravel()
    assert m["confusion"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}


def test_ece_by_hand_and_bins():
    y = [0, 0, 1, 0]
    p = [0.1, 0.1, 0.9, 0.9]
    # bin of 0.1: gap 0.1, bin of 0.9: fraction fake 0.5, gap 0.4; each half of the data.
    assert expected_calibration_error(y, p) == pytest.approx(0.25)
    b = reliability_bins(y, p)
    assert b["count"].sum() == 4 and len(b["edges"]) == 16
    assert reliability_bins([1], [1.0])["count"][-1] == 1  # p = 1 lands in the top bin


def test_ece_calibrated_vs_overconfident():
    rng = np.random.default_rng(3)
    p = rng.random(200000)
    y = (rng.random(p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.01
    logit = np.log(p / (1 - p))
    over = 1 / (1 + np.exp(-3 * logit))  # same ranking, pushed towards 0 and 1
    assert expected_calibration_error(y, over) > 0.1


def test_ece_needs_probabilities():
    y = np.array([0, 1, 0, 1])
    logits = np.array([-2.0, 3.0, 0.5, 1.0])
    m = detection_metrics(y, logits, 0.0)
    assert m["ece"] is None and any("ece" in n for n in m["notes"])
    probs = 1 / (1 + np.exp(-logits))
    m = detection_metrics(y, logits, 0.0, probs=probs)
    assert m["ece"] == pytest.approx(expected_calibration_error(y, probs))
    with pytest.raises(ValueError):
        detection_metrics(y, logits, 0.0, probs=logits)


def test_one_class_and_bad_input():
    m = detection_metrics([0, 0, 0], [0.1, 0.6, 0.2], 0.5)
    assert m["roc_auc"] is m["ap"] is m["eer"] is m["eer_threshold"] is None
    assert "only real" in m["notes"][0]
    assert m["accuracy"] == pytest.approx(2 / 3) and m["confusion"]["fp"] == 1
    for labels, scores in [([], []), ([0, 1], [0.1]), ([0, 2], [0.1, 0.2]), ([0, 1], [0, np.nan])]:
        with pytest.raises(ValueError):
            detection_metrics(labels, scores, 0.5)


def _ranked(y, s):
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order].astype(float), s[order]
    starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
    onehot = np.eye(15)[np.minimum((ss * 15).astype(int), 14)]
    return order, ys, ss, starts, onehot


def test_weighted_core_matches_sklearn_and_point_metrics():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 120)
    s = np.round(rng.random(120) * 0.6 + 0.4 * y, 2)
    order, ys, ss, starts, onehot = _ranked(y, s)
    w = rng.integers(0, 4, size=(5, 120)).astype(float)
    w[0] = 1.0
    got = _weighted_metrics(ys, starts, ss[starts], onehot, ss, w, 0.5)
    m = detection_metrics(y, s, 0.5)
    for k in INTERVAL_KEYS:
        assert got[k][0] == pytest.approx(m[k], abs=1e-12), k
    for b in range(1, 5):
        sw = w[b][np.argsort(order)]  # back to the original order
        assert got["roc_auc"][b] == pytest.approx(roc_auc_score(y, s, sample_weight=sw))
        ap = average_precision_score(y, s, sample_weight=sw)
        assert got["ap"][b] == pytest.approx(ap)
        rep = np.repeat(np.arange(120), sw.astype(int))  # weights as repeated samples
        m = detection_metrics(y[rep], s[rep], 0.5)
        for k in INTERVAL_KEYS:
            assert got[k][b] == pytest.approx(m[k], abs=1e-12), k


def _probs(n, seed):
    y, s = _gaussians(n, 1.5, seed)
    return y, 1 / (1 + np.exp(-1.5 * s))


def test_bootstrap_contains_estimate_and_shrinks():
    y, p = _probs(150, 5)
    m = detection_metrics(y, p, 0.5)
    small = bootstrap_intervals(y, p, 0.5, n_boot=500)
    assert set(small) == set(INTERVAL_KEYS)
    for k, (lo, hi) in small.items():
        assert lo <= m[k] <= hi, k
    y2, p2 = _probs(3000, 6)
    big = bootstrap_intervals(y2, p2, 0.5, n_boot=300, max_elements=50_000)  # 17 chunks
    for k in INTERVAL_KEYS:
        assert big[k][1] - big[k][0] < 0.6 * (small[k][1] - small[k][0]), k
    assert bootstrap_intervals(y, p, 0.5, n_boot=200, seed=3) == bootstrap_intervals(
        y, p, 0.5, n_boot=200, seed=3
    )


def test_bootstrap_stratified_keeps_class_counts():
    y, p = _probs(100, 7)
    y = y[:150]  # 100 reals, 50 fakes
    p = p[:150]
    # everything flagged fake: accuracy = fake share, fixed only when class counts are kept
    strat = bootstrap_intervals(y, p, 0.0, n_boot=300)
    assert strat["accuracy"] == pytest.approx((1 / 3, 1 / 3))
    loose = bootstrap_intervals(y, p, 0.0, n_boot=300, stratified=False)
    assert loose["accuracy"][1] - loose["accuracy"][0] > 0.05


def test_bootstrap_degenerate_and_logits():
    iv = bootstrap_intervals([1, 1, 1, 1], [0.2, 0.6, 0.7, 0.9], 0.5, n_boot=50)
    assert iv["roc_auc"] == iv["ap"] == iv["eer"] == (None, None)
    assert iv["recall"][0] is not None
    iv = bootstrap_intervals([0, 1, 0, 1], [-3.0, 2.0, 1.0, 4.0], 0.0, n_boot=50)
    assert iv["ece"] == (None, None) and iv["roc_auc"][0] is not None
    with pytest.raises(ValueError):
        bootstrap_intervals([0, 1], [0.1, 0.9], 0.5, n_boot=0)


def test_per_source_table():
    y = [0, 0, 1, 1, 1, 0]
    s = [0.1, 0.2, 0.9, 0.15, 0.3, 0.05]
    src = ["real", "real", "gan", "diff", "diff", "other"]
    rows = per_source_table(y, s, src, 0.25)
    assert [r["source"] for r in rows] == ["diff", "gan"]
    diff, gan = rows
    assert diff["n"] == 2 and diff["n_real"] == 3
    assert diff["roc_auc"] == pytest.approx(
        roc_auc_score([0, 0, 0, 1, 1], [0.1, 0.2, 0.05, 0.15, 0.3])
    )
    assert diff["detection_rate"] == 0.5
    assert gan["roc_auc"] == 1.0 and gan["detection_rate"] == 1.0 and gan["n"] == 1
    rows = per_source_table([1, 1], [0.1, 0.9], ["a", "a"], 0.5)
    assert rows[0]["roc_auc"] is None and rows[0]["n_real"] == 0
