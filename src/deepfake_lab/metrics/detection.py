"""Metrics of a real-vs-fake detector: ranking, operating point, calibration and intervals.

Conventions used throughout the module:

- ``labels``: (N,) with 1 = fake and 0 = real (ints, bools or floats equal to 0/1);
- ``scores``: (N,) finite "fake" scores where higher means more likely fake: probabilities
  or logits, the ranking metrics do not care which;
- a sample is called fake when ``score >= threshold`` (ties at the threshold count as fake);
- ``probs``: (N,) probabilities of "fake" in [0, 1], needed only by the expected
  calibration error (ECE), which is meaningless for logits or uncalibrated scores.

Point estimates come from scikit-learn where it has the metric. The bootstrap uses one
vectorised weighted implementation of the same formulas (a resample is a vector of counts
over the original samples), checked against scikit-learn's ``sample_weight`` in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score, roc_curve

__all__ = [
    "ECE_BINS",
    "INTERVAL_KEYS",
    "bootstrap_intervals",
    "check_labels_scores",
    "detection_metrics",
    "equal_error_rate",
    "expected_calibration_error",
    "per_source_table",
    "reliability_bins",
]

#: Equal-width probability bins of the expected calibration error.
ECE_BINS = 15
#: The scalar metrics that get bootstrap intervals.
INTERVAL_KEYS = ("roc_auc", "ap", "eer", "accuracy", "precision", "recall", "f1", "ece")
_RANKING_KEYS = ("roc_auc", "ap", "eer")


def check_labels_scores(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert to ``(labels int64 (N,), scores float64 (N,))``.

    Raises:
        ValueError: empty input, shapes that differ or are not 1-D, labels other than 0/1,
            or non-finite scores.
    """
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or y.shape != s.shape:
        raise ValueError(
            f"labels and scores must be 1-D of the same length, got {y.shape} and {s.shape}"
        )
    if y.size == 0:
        raise ValueError("no samples: labels and scores are empty")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 (real) or 1 (fake), got values {np.unique(y)[:5]}")
    if not np.isfinite(s).all():
        raise ValueError(f"{int((~np.isfinite(s)).sum())} scores are NaN or infinite")
    return y.astype(np.int64), s


def _check_probs(probs: ArrayLike, n: int) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != (n,):
        raise ValueError(f"probs must have shape ({n},), got {p.shape}")
    if not (np.isfinite(p).all() and p.min() >= 0.0 and p.max() <= 1.0):
        raise ValueError("probs must be probabilities in [0, 1] (apply a sigmoid to logits)")
    return p


def _bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    # Bins [k/n, (k+1)/n) with the last one closed, so p = 1 lands in the top bin.
    return np.minimum((p * n_bins).astype(np.int64), n_bins - 1)


def reliability_bins(
    labels: ArrayLike, probs: ArrayLike, n_bins: int = ECE_BINS
) -> dict[str, np.ndarray]:
    """Per-bin statistics of a reliability diagram (equal-width bins over P(fake)).

    Returns:
        ``edges`` (n_bins + 1,), ``count`` (n_bins,) int, ``mean_prob`` and ``frac_fake``
        (n_bins,), NaN in empty bins.
    """
    y, p = check_labels_scores(labels, probs)
    p = _check_probs(p, len(y))
    idx = _bin_index(p, n_bins)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.bincount(idx, weights=p, minlength=n_bins) / count
        frac_fake = np.bincount(idx, weights=y.astype(np.float64), minlength=n_bins) / count
    return {
        "edges": np.linspace(0.0, 1.0, n_bins + 1),
        "count": count,
        "mean_prob": mean_prob,
        "frac_fake": frac_fake,
    }


def expected_calibration_error(
    labels: ArrayLike, probs: ArrayLike, n_bins: int = ECE_BINS
) -> float:
    """ECE = sum_b (n_b / N) |frac_fake_b - mean_prob_b| over equal-width bins of P(fake).

    This is the binary form over the probability of the positive class (Naeini et al.
    2015), not the top-label confidence form; it is in [0, 1] and 0 for perfect calibration.
    """
    b = reliability_bins(labels, probs, n_bins)
    gap = np.abs(b["frac_fake"] - b["mean_prob"])  # NaN in empty bins, which nansum skips
    return float(np.nansum(b["count"] * gap) / b["count"].sum())


def _crossing(fpr: np.ndarray, tpr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each ROC row (B, K), starting at (0, 0), crosses FPR = FNR.

    Returns (i, t, eer): the crossing lies on the segment from point i - 1 to point i, at
    fraction t in (0, 1], and the interpolated EER there.
    """
    d = 1.0 - tpr - fpr  # FNR - FPR: 1 at (0, 0), -1 at (1, 1), non-increasing in between
    i = np.argmax(d <= 0.0, axis=1)
    rows = np.arange(len(d))
    d0, d1 = d[rows, i - 1], d[rows, i]
    t = d0 / (d0 - d1)
    eer = fpr[rows, i - 1] + t * (fpr[rows, i] - fpr[rows, i - 1])
    return i, t, eer


def equal_error_rate(labels: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """EER and its threshold, interpolated linearly on the ROC curve.

    The EER is where FPR = FNR (= 1 - TPR) on the piecewise-linear ROC curve. The
    threshold is interpolated between the two neighbouring distinct scores in the same
    proportion; used as ``score >= threshold`` on the same data, it gives the ROC vertex
    at the crossing, or the one just before it.

    Raises:
        ValueError: one class only (the ROC curve is undefined), or empty input.
    """
    y, s = check_labels_scores(labels, scores)
    if y.min() == y.max():
        raise ValueError("EER needs both real and fake samples")
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    (i,), (t,), (eer,) = _crossing(fpr[None], tpr[None])
    if i == 1:  # the segment starts at the (0, 0) point, whose threshold is +inf
        return float(eer), float(thr[1])
    return float(eer), float(thr[i - 1] + t * (thr[i] - thr[i - 1]))


def _probs_for_ece(s: np.ndarray, probs: ArrayLike | None, notes: list[str]) -> np.ndarray | None:
    if probs is not None:
        return _check_probs(probs, len(s))
    if s.min() >= 0.0 and s.max() <= 1.0:
        return s
    notes.append("ece is None: scores are outside [0, 1] (logits?); pass probs= to get it")
    return None


def detection_metrics(
    labels: ArrayLike,
    scores: ArrayLike,
    threshold: float,
    *,
    probs: ArrayLike | None = None,
) -> dict[str, Any]:
    """All point metrics of a detector on one labelled set.

    Args:
        labels: (N,) 1 = fake, 0 = real.
        scores: (N,) fake scores (probabilities or logits).
        threshold: operating point on the scale of ``scores``; ``score >= threshold`` is fake.
        probs: (N,) calibrated P(fake) in [0, 1] for the ECE; default ``scores`` when they
            are in [0, 1]. The ECE is only meaningful for probabilities.

    Returns:
        JSON-safe dict: ``n``, ``n_real``, ``n_fake``, ``threshold``, ``roc_auc``, ``ap``,
        ``eer``, ``eer_threshold`` (None with one class only), ``accuracy``, ``precision``,
        ``recall``, ``f1`` (0 where undefined, as scikit-learn's ``zero_division=0``),
        ``confusion`` ({"tn", "fp", "fn", "tp"}), ``ece`` (None without probabilities) and
        ``notes`` (list of str explaining any None).

    Raises:
        ValueError: empty or malformed input.
    """
    y, s = check_labels_scores(labels, scores)
    notes: list[str] = []
    n_fake = int(y.sum())
    out: dict[str, Any] = {
        "n": len(y),
        "n_real": len(y) - n_fake,
        "n_fake": n_fake,
        "threshold": float(threshold),
    }
    if 0 < n_fake < len(y):
        eer, eer_thr = equal_error_rate(y, s)
        out |= {
            "roc_auc": float(roc_auc_score(y, s)),
            "ap": float(average_precision_score(y, s)),
            "eer": eer,
            "eer_threshold": eer_thr,
        }
    else:
        only = "fake" if n_fake else "real"
        out |= dict.fromkeys((*_RANKING_KEYS, "eer_threshold"))
        notes.append(f"roc_auc, ap and eer are None: only {only} samples were given")
    pred = (s >= threshold).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, pred, labels=[0, 1]).ravel())
    out |= {
        "accuracy": (tp + tn) / len(y),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }
    p = _probs_for_ece(s, probs, notes)
    out["ece"] = None if p is None else expected_calibration_error(y, p)
    out["notes"] = notes
    return out


def _weighted_metrics(
    y: np.ndarray,
    starts: np.ndarray,
    group_scores: np.ndarray,
    onehot: np.ndarray | None,
    p: np.ndarray | None,
    w: np.ndarray,
    threshold: float,
) -> dict[str, np.ndarray]:
    """Metrics of B weighted copies of one set, all at once.

    Args:
        y: (N,) labels sorted by score, descending.
        starts: (G,) first index of each group of tied scores in that order.
        group_scores: (G,) the distinct scores, descending.
        onehot: (N, bins) ECE bin membership, or None; p: (N,) probabilities, or None.
        w: (B, N) sample weights (bootstrap counts) in the same order.
        threshold: the operating point.

    Returns:
        key -> (B,) values; NaN where a metric is undefined (a class with zero weight).
    """
    wp = np.add.reduceat(w * y, starts, axis=1)  # (B, G) fake weight per tied group
    wn = np.add.reduceat(w * (1.0 - y), starts, axis=1)
    tp, fp = np.cumsum(wp, axis=1), np.cumsum(wn, axis=1)  # counts at score >= each group
    pos, neg = tp[:, -1], fp[:, -1]
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        # Mann-Whitney: each real counts the fakes above it, plus half of those tied with it.
        out["roc_auc"] = np.sum(wn * (tp - 0.5 * wp), axis=1) / (pos * neg)
        # Step-wise AP as scikit-learn: sum over thresholds of recall gain x precision.
        prec = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=tp + fp > 0)
        out["ap"] = np.sum(wp * prec, axis=1) / pos
        zero = np.zeros((len(w), 1))
        fpr = np.concatenate([zero, fp / neg[:, None]], axis=1)
        tpr = np.concatenate([zero, tp / pos[:, None]], axis=1)
    ok = (pos > 0) & (neg > 0)
    eer = np.full(len(w), np.nan)
    if ok.any():
        eer[ok] = _crossing(fpr[ok], tpr[ok])[2]
    out["eer"] = eer
    for key in _RANKING_KEYS:
        out[key] = np.where(ok, out[key], np.nan)
    # Groups with score >= threshold form a prefix of the descending order.
    k = int(np.searchsorted(-group_scores, -threshold, side="right"))
    tp_t = tp[:, k - 1] if k else np.zeros(len(w))
    fp_t = fp[:, k - 1] if k else np.zeros(len(w))
    fn_t, tn_t = pos - tp_t, neg - fp_t

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros_like(a), where=b > 0)

    out["accuracy"] = ratio(tp_t + tn_t, pos + neg)
    out["precision"] = ratio(tp_t, tp_t + fp_t)
    out["recall"] = ratio(tp_t, pos)
    out["f1"] = ratio(2 * tp_t, 2 * tp_t + fp_t + fn_t)
    if onehot is not None and p is not None:
        gap = np.abs((w * y) @ onehot - (w * p) @ onehot)  # (B, bins): |sum y - sum p|
        out["ece"] = gap.sum(axis=1) / w.sum(axis=1)
    else:
        out["ece"] = np.full(len(w), np.nan)
    return out


def bootstrap_intervals(
    labels: ArrayLike,
    scores: ArrayLike,
    threshold: float,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    stratified: bool = True,
    *,
    probs: ArrayLike | None = None,
    max_elements: int = 1_000_000,
) -> dict[str, tuple[float | None, float | None]]:
    """Percentile bootstrap intervals of the scalar metrics in ``INTERVAL_KEYS``.

    Args:
        labels, scores, threshold, probs: as :func:`detection_metrics`.
        n_boot: number of resamples.
        seed: seed of the resampling (same inputs and seed -> same intervals).
        alpha: 1 - coverage; 0.05 gives 95% intervals (2.5th and 97.5th percentiles).
        stratified: resample reals and fakes separately, keeping both class counts, so that
            no resample loses a class; otherwise resample all N together.
        max_elements: cap on resamples x N per vectorised chunk (memory bound, ~8 bytes each
            times a few arrays).

    Returns:
        key -> (low, high); (None, None) where the metric is undefined in every resample
        (ranking metrics with one class, ECE without probabilities). Resamples where a
        metric is undefined (a class drawn zero times, unstratified) are left out.
    """
    if n_boot < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got {n_boot}, {alpha}")
    y, s = check_labels_scores(labels, scores)
    p = _probs_for_ece(s, probs, [])
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order].astype(np.float64), s[order]
    starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
    onehot = ps = None
    if p is not None:
        ps = p[order]
        onehot = np.eye(ECE_BINS)[_bin_index(ps, ECE_BINS)]
    n = len(y)
    groups = [np.flatnonzero(ys == c) for c in (0, 1)] if stratified else [np.arange(n)]
    rng = np.random.default_rng(seed)
    chunk = max(1, max_elements // n)
    values: dict[str, list[np.ndarray]] = {k: [] for k in INTERVAL_KEYS}
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        w = np.zeros((b, n))
        for idx in groups:
            if len(idx) == 0:
                continue
            # Draw indices, then count them per row: one bincount instead of B multinomials.
            draws = idx[rng.integers(0, len(idx), size=(b, len(idx)))]
            flat = draws + n * np.arange(b)[:, None]
            w += np.bincount(flat.ravel(), minlength=b * n).reshape(b, n)
        vals = _weighted_metrics(ys, starts, ss[starts], onehot, ps, w, threshold)
        for k in INTERVAL_KEYS:
            values[k].append(vals[k])
    out: dict[str, tuple[float | None, float | None]] = {}
    for k in INTERVAL_KEYS:
        v = np.concatenate(values[k])
        v = v[~np.isnan(v)]
        if v.size == 0:
            out[k] = (None, None)
        else:
            lo, hi = np.percentile(v, [50.0 * alpha, 100.0 - 50.0 * alpha])
            out[k] = (float(lo), float(hi))
    return out


def per_source_table(
    labels: ArrayLike,
    scores: ArrayLike,
    sources: Sequence[str] | ArrayLike,
    threshold: float,
) -> list[dict[str, Any]]:
    """Each fake source against all the reals.

    Args:
        labels, scores, threshold: as :func:`detection_metrics`.
        sources: (N,) the generator or manipulation of each sample; ignored for reals.

    Returns:
        One row per fake source, sorted by name: ``source``, ``n`` (fakes of that source),
        ``n_real``, ``roc_auc``, ``ap``, ``eer`` (None without reals) and
        ``detection_rate`` (recall of that source's fakes at ``threshold``).
    """
    y, s = check_labels_scores(labels, scores)
    src = np.asarray([str(v) for v in sources], dtype=object)
    if src.shape != y.shape:
        raise ValueError(f"sources must have shape {y.shape}, got {src.shape}")
    rows = []
    for name in sorted(set(src[y == 1])):
        mask = (y == 0) | (src == name)
        m = detection_metrics(y[mask], s[mask], threshold)
        rows.append(
            {
                "source": name,
                "n": m["n_fake"],
                "n_real": m["n_real"],
                "roc_auc": m["roc_auc"],
                "ap": m["ap"],
                "eer": m["eer"],
                "detection_rate": m["recall"],
            }
        )
    return rows
