"""Detector pictures as PNGs: ROC, precision-recall, reliability, confusion, score histograms.

Figures come from :mod:`deepfake_lab.report.figure` (Agg canvas, written atomically).
Degenerate input (empty, one class, constant scores, non-finite values) never raises: the
affected panel says what is missing instead. Labels are 1 = fake, 0 = real.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from deepfake_lab.metrics.detection import ECE_BINS, reliability_bins
from deepfake_lab.report.figure import new_figure, save_png
from deepfake_lab.safe_text import for_plot

__all__ = [
    "plot_confusion",
    "plot_pr",
    "plot_reliability",
    "plot_roc",
    "plot_score_hist",
]

Curves = Mapping[str, tuple[ArrayLike, ArrayLike]]


def _figure(w: float = 5.0, h: float = 4.4) -> Figure:
    return new_figure(w, h)


_save = save_png


def say(ax: Axes, text: str) -> None:
    """Write ``text`` in grey in the middle of an empty panel (what is missing, and why)."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _clean(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Finite, well-formed (labels, scores), and why they cannot be drawn (or None)."""
    y = np.asarray(labels).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        return y[:0], s[:0], f"{y.size} labels but {s.size} scores"
    keep = np.isfinite(s) & np.isin(y, (0, 1))
    y, s = y[keep].astype(np.int64), s[keep]
    if y.size == 0:
        return y, s, "no data"
    if y.min() == y.max():
        return y, s, f"only {'fake' if y[0] else 'real'} samples"
    return y, s, None


def _note_skipped(ax: Axes, skipped: list[str], any_curves: bool, corner: str) -> None:
    """List the curves that could not be drawn in a bottom corner; "no data" when none were
    given at all."""
    if skipped:
        x = 0.98 if corner == "right" else 0.02
        ax.text(
            x,
            0.02,
            "\n".join(skipped),
            ha=corner,
            va="bottom",
            fontsize="small",
            transform=ax.transAxes,
            color="0.4",
        )
    if not any_curves:
        say(ax, "no data")


def finish(fig: Figure, ax: Axes, title: str | None, drawn: bool) -> None:
    """Legend (when something was drawn), a light grid and the figure title (plain text: a
    file name in it is drawn as it is, never as mathtext)."""
    if drawn:
        ax.legend(loc="best", fontsize="small", frameon=False)
    ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(for_plot(title))


def plot_roc(curves: Curves, path: Path, title: str | None = None, log_x: bool = False) -> Path:
    """ROC curves, AUC in the legend, with the chance diagonal.

    Args:
        curves: name -> (labels (N,), scores (N,)); one line each.
        path: the PNG to write.
        title: optional figure title.
        log_x: logarithmic FPR axis, which shows the low-FPR region forensics cares about.

    Returns:
        ``path``.
    """
    fig = _figure()
    ax = fig.subplots()
    drawn, skipped, min_fpr = False, [], 1.0
    for ci, (name, (labels, scores)) in enumerate(curves.items()):
        y, s, why = _clean(labels, scores)
        if why:
            skipped.append(f"{for_plot(name)}: {why}")
            continue
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(
            fpr,
            tpr,
            color=f"C{ci % 10}",
            lw=1.6,
            label=f"{for_plot(name)} (AUC {auc(fpr, tpr):.3f})",
        )
        min_fpr = min(min_fpr, 1.0 / int((y == 0).sum()))
        drawn = True
    if log_x:
        # FPR = 0 has no place on a log axis: start half a real below the smallest step.
        lo = min_fpr / 2 if drawn else 1e-3
        grid = np.logspace(np.log10(lo), 0, 50)
        ax.plot(grid, grid, ls="--", color="0.6", lw=1)
        ax.set_xscale("log")
        ax.set_xlim(lo, 1.0)
    else:
        ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1)
        ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false-positive rate (reals flagged)")
    ax.set_ylabel("true-positive rate (fakes caught)")
    _note_skipped(ax, skipped, bool(curves), corner="right")
    finish(fig, ax, title, drawn)
    return _save(fig, path)


def plot_pr(curves: Curves, path: Path, title: str | None = None) -> Path:
    """Precision-recall curves (fake = positive), average precision in the legend.

    Args:
        curves: name -> (labels (N,), scores (N,)).
        path: the PNG to write.
        title: optional figure title.

    Returns:
        ``path``; the dotted line of each curve is its chance level (fake prevalence).
    """
    fig = _figure()
    ax = fig.subplots()
    drawn, skipped = False, []
    for ci, (name, (labels, scores)) in enumerate(curves.items()):
        y, s, why = _clean(labels, scores)
        if why:
            skipped.append(f"{for_plot(name)}: {why}")
            continue
        precision, recall, _ = precision_recall_curve(y, s)
        ap = average_precision_score(y, s)
        color = f"C{ci % 10}"
        ax.step(
            recall,
            precision,
            where="post",
            color=color,
            lw=1.6,
            label=f"{for_plot(name)} (AP {ap:.3f})",
        )
        ax.axhline(y.mean(), ls=":", color=color, lw=1)
        drawn = True
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("recall (fakes caught)")
    ax.set_ylabel("precision (flagged that are fake)")
    _note_skipped(ax, skipped, bool(curves), corner="left")
    finish(fig, ax, title, drawn)
    return _save(fig, path)


def plot_reliability(
    labels: ArrayLike,
    probs: ArrayLike,
    path: Path,
    n_bins: int = ECE_BINS,
    title: str | None = None,
) -> Path:
    """Reliability diagram: fraction of fakes against mean P(fake) per bin, with the ECE.

    Args:
        labels: (N,) 1 = fake, 0 = real.
        probs: (N,) P(fake) in [0, 1]; values outside [0, 1] or non-finite are dropped.
        path: the PNG to write.
        n_bins: equal-width bins (15 as the ECE of ``detection_metrics``).
        title: optional figure title.

    Returns:
        ``path``; the lower panel shows how many samples fall in each bin.
    """
    y, p, why = _clean(labels, probs)
    keep = (p >= 0.0) & (p <= 1.0)
    y, p = y[keep], p[keep]
    fig = _figure(5.0, 5.6)
    ax, axc = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="perfect calibration")
    if y.size:
        b = reliability_bins(y, p, n_bins)
        width = 1.0 / n_bins
        centers = b["edges"][:-1] + width / 2
        filled = b["count"] > 0
        gap = np.abs(b["frac_fake"] - b["mean_prob"])
        ece = float(np.nansum(b["count"] * gap) / b["count"].sum())
        ax.bar(
            centers[filled],
            b["frac_fake"][filled],
            width=width * 0.9,
            color="C0",
            alpha=0.75,
            label=f"fraction fake (ECE {ece:.3f})",
        )
        ax.plot(
            b["mean_prob"][filled],
            b["frac_fake"][filled],
            "o",
            color="C3",
            ms=4,
            label="bin mean P(fake)",
        )
        axc.bar(centers, b["count"], width=width * 0.9, color="0.5")
        if why and why != "no data":
            ax.text(0.02, 0.98, why, ha="left", va="top", transform=ax.transAxes, color="0.4")
    else:
        say(ax, "no probabilities in [0, 1]" if why is None else why)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_ylabel("fraction fake")
    axc.set_xlabel("predicted P(fake)")
    axc.set_ylabel("count")
    finish(fig, ax, title, True)
    return _save(fig, path)


def plot_confusion(confusion: Mapping[str, int], path: Path, title: str | None = None) -> Path:
    """2 x 2 confusion matrix (rows true, columns predicted) with counts and row shares.

    Args:
        confusion: {"tn", "fp", "fn", "tp"} counts, as ``detection_metrics`` gives.
        path: the PNG to write.
        title: optional figure title.

    Returns:
        ``path``.
    """
    m = np.array(
        [
            [confusion.get("tn", 0), confusion.get("fp", 0)],
            [confusion.get("fn", 0), confusion.get("tp", 0)],
        ],
        dtype=np.float64,
    )
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    fig = _figure(4.4, 4.0)
    ax = fig.subplots()
    # Colour by row share so a small class is as readable as a large one.
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(2):
        for j in range(2):
            ax.text(
                j,
                i,
                f"{int(m[i, j])}\n{100 * share[i, j]:.1f}%",
                ha="center",
                va="center",
                color="white" if share[i, j] > 0.5 else "black",
            )
    ax.set_xticks([0, 1], ["real", "fake"])
    ax.set_yticks([0, 1], ["real", "fake"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if m.sum() == 0:
        ax.set_title("no data", color="0.4")
    if title:
        fig.suptitle(for_plot(title))
    return _save(fig, path)


def plot_score_hist(
    labels: ArrayLike,
    scores: ArrayLike,
    path: Path,
    threshold: float | None = None,
    title: str | None = None,
    bins: int = 50,
) -> Path:
    """Histograms of the real and the fake scores on shared bins, with the threshold.

    Args:
        labels: (N,) 1 = fake, 0 = real.
        scores: (N,) fake scores; non-finite ones are dropped.
        path: the PNG to write.
        threshold: drawn as a vertical line when given.
        title: optional figure title.
        bins: number of shared bins.

    Returns:
        ``path``.
    """
    y, s, why = _clean(labels, scores)
    fig = _figure(5.6, 3.8)
    ax = fig.subplots()
    drawn = False
    if y.size:
        edges = np.histogram_bin_edges(s, bins=bins)  # constant scores give a unit range
        for cls, name, color in ((0, "real", "C0"), (1, "fake", "C3")):
            part = s[y == cls]
            if part.size:
                ax.hist(
                    part,
                    bins=edges,
                    color=color,
                    alpha=0.55,
                    label=f"{for_plot(name)} (n={part.size})",
                )
        ax.set_ylim(top=ax.get_ylim()[1] * 1.2)  # head room for the legend
        drawn = True
        if why:
            ax.text(0.02, 0.98, why, ha="left", va="top", transform=ax.transAxes, color="0.4")
    else:
        say(ax, why or "no data")
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(threshold, color="k", ls="--", lw=1.2, label=f"threshold {threshold:.3g}")
        drawn = True
    ax.set_xlabel("fake score")
    ax.set_ylabel("count")
    finish(fig, ax, title, drawn)
    return _save(fig, path)
