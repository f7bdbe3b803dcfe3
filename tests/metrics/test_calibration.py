import json

import numpy as np
import pytest
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from deepfake_lab.metrics.calibration import (
    Calibration,
    apply_temperature,
    binary_nll,
    calibrate,
    fit_temperature,
    threshold_at_eer,
    threshold_at_fpr,
)
from deepfake_lab.metrics.detection import detection_metrics, equal_error_rate


def _fpr(y, s, t):
    return float(np.mean(s[y == 0] >= t))


def _logit_data(n, scale, seed=0):
    """labels ~ Bernoulli(sigmoid(z)), returned with the logits ``scale * z``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < expit(z)).astype(int)
    return y, scale * z


@pytest.mark.parametrize("target", [0.0, 0.01, 0.05, 0.1, 0.333, 0.5, 1.0])
def test_threshold_at_fpr_is_smallest_within_target(target):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    s = np.round(rng.normal(y * 1.0, 1.0), 1)  # many ties
    t = threshold_at_fpr(y, s, target)
    assert _fpr(y, s, t) <= target
    lower = np.unique(s)[np.unique(s) < t]
    if lower.size:  # the next observed score down would break the target
        assert _fpr(y, s, lower.max()) > target


def test_threshold_at_fpr_ties_and_top_real():
    y = np.array([0, 0, 0, 0, 1, 1])
    s = np.array([0.1, 0.5, 0.5, 0.2, 0.5, 0.9])
    # the two reals tied at 0.5 come together: FPR 0.5 allowed -> 0.5; 0.25 -> above the tie
    assert threshold_at_fpr(y, s, 0.5) == 0.5
    assert threshold_at_fpr(y, s, 0.25) == 0.9
    # top score is a real: no observed score gives FPR 0, so the next float above it
    y, s = np.array([0, 1, 0]), np.array([0.9, 0.5, 0.1])
    t = threshold_at_fpr(y, s, 0.0)
    assert t > 0.9 and t == np.nextafter(0.9, 1.0) and _fpr(y, s, t) == 0.0
    with pytest.raises(ValueError):
        threshold_at_fpr([1, 1], [0.1, 0.2], 0.1)
    with pytest.raises(ValueError):
        threshold_at_fpr([0, 1], [0.1, 0.2], 1.5)


def test_threshold_at_eer():
    rng = np.random.default_rng(2)
    y = np.r_[np.zeros(20000, int), np.ones(20000, int)]
    s = np.r_[rng.normal(-1, 1, 20000), rng.normal(1, 1, 20000)]
    t = threshold_at_eer(y, s)
    assert t == equal_error_rate(y, s)[1]
    assert t == pytest.approx(0.0, abs=0.05)
    assert _fpr(y, s, t) == pytest.approx(1 - np.mean(s[y == 1] >= t), abs=0.01)
    with pytest.raises(ValueError):
        threshold_at_eer([0, 0], [0.1, 0.2])


@pytest.mark.parametrize("scale", [3.0, 1.0, 0.5])
def test_temperature_recovers_known_scale(scale):
    y, logits = _logit_data(40000, scale)
    t = fit_temperature(y, logits)
    assert t == pytest.approx(scale, rel=0.05)
    assert binary_nll(y, logits, t) <= binary_nll(y, logits, 1.0) + 1e-12
    if scale != 1.0:
        assert binary_nll(y, logits, t) < binary_nll(y, logits, 1.0) - 1e-3


def test_binary_nll_and_apply_temperature():
    y = np.array([0, 1, 1])
    z = np.array([-1.0, 2.0, 800.0])  # a huge logit must not overflow
    p = expit(z / 2)
    expected = -np.mean(np.log(np.r_[1 - p[0], p[1], 1.0]))
    assert binary_nll(y, z, 2.0) == pytest.approx(expected)
    np.testing.assert_allclose(apply_temperature(z, 2.0), p)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError):
            apply_temperature(z, bad)
    with pytest.raises(ValueError):
        fit_temperature([1, 1, 1], z)


def test_perfect_separation_hits_lower_bound():
    t = fit_temperature([0, 0, 1, 1], [-2.0, -1.0, 1.0, 2.0])
    assert t == pytest.approx(1e-2, rel=1e-3)


@pytest.mark.parametrize("method, target", [("eer", None), ("fpr", 0.05)])
def test_calibrate_and_json_round_trip(method, target):
    y, logits = _logit_data(5000, 3.0, seed=3)
    cal = calibrate(y, logits, method=method, target_fpr=target)
    assert cal.temperature == pytest.approx(3.0, rel=0.1)
    assert (cal.n, cal.n_real + cal.n_fake) == (5000, 5000) and cal.n_fake == y.sum()
    probs = cal.probabilities(logits)
    # calibration is monotonic: the ranking and ROC-AUC are unchanged
    assert roc_auc_score(y, probs) == pytest.approx(roc_auc_score(y, logits))
    assert 0.0 <= cal.threshold <= 1.0
    if method == "fpr":
        assert _fpr(y, probs, cal.threshold) <= target
    else:
        assert cal.threshold == pytest.approx(threshold_at_eer(y, probs))
    np.testing.assert_array_equal(cal.predict(logits), (probs >= cal.threshold).astype(int))
    m = detection_metrics(y, probs, cal.threshold)
    assert m["ece"] < 0.03  # calibrated probabilities
    d = json.loads(json.dumps(cal.to_dict()))
    assert Calibration.from_dict(d) == cal
    assert Calibration.from_dict({**d, "future_key": 1}) == cal


def test_calibration_validation():
    y, logits = _logit_data(200, 1.0)
    with pytest.raises(ValueError):
        calibrate(y, logits, method="fpr")
    with pytest.raises(ValueError):
        calibrate(y, logits, method="eer", target_fpr=0.1)
    with pytest.raises(ValueError):
        calibrate(y, logits, method="roc")  # type: ignore[arg-type]
    good = calibrate(y, logits).to_dict()
    with pytest.raises(ValueError, match="temperature"):
        Calibration.from_dict({k: v for k, v in good.items() if k != "temperature"})
    with pytest.raises(ValueError):
        Calibration.from_dict({**good, "temperature": -1.0})
    with pytest.raises(ValueError):
        Calibration.from_dict({**good, "method": "fpr"})  # no target
