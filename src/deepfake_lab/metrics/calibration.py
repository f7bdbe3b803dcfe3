"""Calibrating a detector on validation data: temperature scaling, then a decision threshold.

Order matters: the temperature is fitted first (Guo et al. 2017, "On calibration of modern
neural networks"), so that scores become probabilities, and the threshold is then chosen on
those probabilities, at the equal-error point or at a target false-positive rate.
Temperature scaling is monotonic, so it changes neither the ranking nor ROC-AUC/AP/EER.

Labels are 1 = fake, 0 = real, and ``score >= threshold`` means fake, as in
:mod:`deepfake_lab.metrics.detection`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize_scalar
from scipy.special import expit

from deepfake_lab.metrics.detection import check_labels_scores, equal_error_rate

__all__ = [
    "Calibration",
    "apply_temperature",
    "binary_nll",
    "calibrate",
    "fit_temperature",
    "threshold_at_eer",
    "threshold_at_fpr",
]

#: Search range of the temperature; beyond it the fit is degenerate anyway (see fit_temperature).
T_BOUNDS = (1e-2, 1e2)
METHODS = ("eer", "fpr")


def threshold_at_eer(labels: ArrayLike, scores: ArrayLike) -> float:
    """Threshold at the equal-error point (interpolated, see ``equal_error_rate``).

    Raises:
        ValueError: one class only.
    """
    return equal_error_rate(labels, scores)[1]


def threshold_at_fpr(labels: ArrayLike, scores: ArrayLike, target_fpr: float) -> float:
    """Smallest threshold whose false-positive rate on this set is <= ``target_fpr``.

    FPR(t) = #(reals with score >= t) / #reals. Candidates are the observed scores, so the
    threshold is one of them (the lowest that keeps FPR within target, which maximises the
    detection rate among them). Ties count as fake: a group of reals tied at one score
    is either all flagged or the threshold moves above the whole group, so the FPR reached
    can be below the target. When even the top score is a real that must not be flagged, the
    threshold is the next float above it (FPR 0).

    Args:
        labels: (N,) 1 = fake, 0 = real; at least one real.
        scores: (N,) fake scores.
        target_fpr: in [0, 1].

    Raises:
        ValueError: no reals, or target outside [0, 1].
    """
    y, s = check_labels_scores(labels, scores)
    if not 0.0 <= target_fpr <= 1.0:
        raise ValueError(f"target_fpr must be in [0, 1], got {target_fpr}")
    reals = np.sort(s[y == 0])
    if reals.size == 0:
        raise ValueError("a threshold at a target FPR needs real samples")
    cand = np.unique(s)  # ascending; FPR is non-increasing along it
    fpr = (reals.size - np.searchsorted(reals, cand, side="left")) / reals.size
    ok = fpr <= target_fpr
    if ok.any():
        return float(cand[np.argmax(ok)])
    return float(np.nextafter(s.max(), np.inf))


def binary_nll(labels: ArrayLike, logits: ArrayLike, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``sigmoid(logits / temperature)``, computed stably."""
    y, z = check_labels_scores(labels, logits)
    x = z / temperature
    # -log p = softplus(-x) for fakes, -log(1 - p) = softplus(x) for reals.
    return float(np.mean(np.logaddexp(0.0, x) - y * x))


def fit_temperature(labels: ArrayLike, logits: ArrayLike) -> float:
    """Temperature T > 0 minimising the NLL of ``sigmoid(logits / T)`` (Guo et al. 2017).

    The search is over log T in ``T_BOUNDS`` (bounded Brent). The NLL is convex in 1 / T,
    hence unimodal in log T. T > 1 softens overconfident logits, T < 1 sharpens. A fit at
    the lower bound means the logits separate the set perfectly (the NLL keeps falling as T
    shrinks); at the upper bound, the logits rank reals above fakes.

    Args:
        labels: (N,) 1 = fake, 0 = real; both classes needed.
        logits: (N,) fake logits (not probabilities).

    Raises:
        ValueError: one class only, or malformed input.
    """
    y, z = check_labels_scores(labels, logits)
    if y.min() == y.max():
        raise ValueError("temperature scaling needs both real and fake samples")
    yf = y.astype(np.float64)

    def nll(log_t: float) -> float:
        x = z * math.exp(-log_t)
        return float(np.mean(np.logaddexp(0.0, x) - yf * x))

    lo, hi = (math.log(b) for b in T_BOUNDS)
    res = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    return float(math.exp(res.x))


def apply_temperature(logits: ArrayLike, temperature: float) -> np.ndarray:
    """``sigmoid(logits / T)``: (N,) float64 probabilities of fake in [0, 1]."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature}")
    return expit(np.asarray(logits, dtype=np.float64) / temperature)


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature and decision threshold (on the calibrated probability scale).

    Attributes:
        temperature: T > 0; probabilities are ``sigmoid(logit / T)``.
        threshold: on those probabilities, ``prob >= threshold`` is fake; in [0, 1], or
            the next float above 1 when a target FPR of 0 meets reals at probability 1.
        method: "eer" (equal-error point) or "fpr" (target false-positive rate).
        target_fpr: the target for method "fpr", else None.
        n, n_real, n_fake: size of the (validation) set it was fitted on.
    """

    temperature: float
    threshold: float
    method: Literal["eer", "fpr"]
    target_fpr: float | None
    n: int
    n_real: int
    n_fake: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not math.isfinite(self.threshold):
            raise ValueError(f"threshold must be finite, got {self.threshold}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if (self.method == "fpr") != (self.target_fpr is not None):
            raise ValueError("target_fpr is required by method 'fpr' and only by it")

    def probabilities(self, logits: ArrayLike) -> np.ndarray:
        """(N,) calibrated P(fake) of raw logits."""
        return apply_temperature(logits, self.temperature)

    def predict(self, logits: ArrayLike) -> np.ndarray:
        """(N,) int64 labels, 1 = fake, of raw logits."""
        return (self.probabilities(logits) >= self.threshold).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict (floats, ints, str, None)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`; unknown keys are ignored so newer files still load.

        Raises:
            ValueError: a missing key or an invalid value.
        """
        try:
            target = d["target_fpr"]
            return cls(
                temperature=float(d["temperature"]),
                threshold=float(d["threshold"]),
                method=str(d["method"]),  # type: ignore[arg-type]  # checked in __post_init__
                target_fpr=None if target is None else float(target),
                n=int(d["n"]),
                n_real=int(d["n_real"]),
                n_fake=int(d["n_fake"]),
            )
        except KeyError as e:
            raise ValueError(f"calibration record lacks the key {e.args[0]!r}") from None


def calibrate(
    labels: ArrayLike,
    logits: ArrayLike,
    method: Literal["eer", "fpr"] = "eer",
    target_fpr: float | None = None,
) -> Calibration:
    """Fit the temperature, then the threshold on the calibrated probabilities.

    Args:
        labels: (N,) validation labels, 1 = fake, 0 = real; both classes needed.
        logits: (N,) the detector's raw fake logits on them.
        method: "eer" or "fpr".
        target_fpr: in [0, 1], required for (and only for) method "fpr".

    Raises:
        ValueError: one class only, a bad method, or a missing or stray target.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if (method == "fpr") != (target_fpr is not None):
        raise ValueError("target_fpr is required by method 'fpr' and only by it")
    y, z = check_labels_scores(labels, logits)
    t = fit_temperature(y, z)
    probs = apply_temperature(z, t)
    if method == "eer":
        thr = threshold_at_eer(y, probs)
    else:
        assert target_fpr is not None
        thr = threshold_at_fpr(y, probs, target_fpr)
    n_fake = int(y.sum())
    return Calibration(
        temperature=t,
        threshold=thr,
        method=method,
        target_fpr=None if target_fpr is None else float(target_fpr),
        n=len(y),
        n_real=len(y) - n_fake,
        n_fake=n_fake,
    )


def calibration_record(
    labels: ArrayLike, logits: ArrayLike, method: str, target_fpr: float, tta: str = "none"
) -> dict[str, Any]:
    """The calibration a detector stores: :func:`calibrate`'s fields plus
    ``logit_threshold``, the same decision taken on the raw logits (thresholds depend only on
    the order of the scores, and logits do not saturate as ``sigmoid(logit / T)`` does for
    small T).

    Args:
        labels: (N,) 1 = fake, 0 = real; both classes needed.
        logits: (N,) raw fake logits.
        method: "eer" or "fpr" (anything else: ValueError from :func:`calibrate`).
        target_fpr: used by method "fpr" only.
        tta: the test-time view the logits were scored with (stored as ``tta``: the
            threshold holds for logits scored that way only).
    """
    fpr = target_fpr if method == "fpr" else None
    cal = calibrate(labels, logits, method=method, target_fpr=fpr)  # type: ignore[arg-type]
    if method == "fpr":
        thr = threshold_at_fpr(labels, logits, target_fpr)
    else:
        thr = threshold_at_eer(labels, logits)
    return {**cal.to_dict(), "logit_threshold": float(thr), "tta": tta}
