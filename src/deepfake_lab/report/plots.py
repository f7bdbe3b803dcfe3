"""Training curves as PNG pictures (matplotlib, Agg canvas, no pyplot).

We build ``matplotlib.figure.Figure`` objects and render them with the Agg canvas
directly instead of going through ``pyplot``: that needs no ``matplotlib.use(...)``, keeps
no figures alive in pyplot's global registry, and works without a display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_lab.report.figure import new_figure, save_png
from deepfake_lab.safe_text import for_plot

X_KEY = "kimg"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _default_keys(records: Sequence[dict[str, Any]]) -> list[str]:
    """Numeric keys other than ``kimg``, in order of first appearance."""
    keys: dict[str, None] = {}
    for rec in records:
        for k, v in rec.items():
            if k != X_KEY and _is_number(v):
                keys.setdefault(k, None)
    return list(keys)


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the records that hold a finite number under ``key``; x is kimg or the index."""
    xs, ys = [], []
    for i, rec in enumerate(records):
        v = rec.get(key)
        if not _is_number(v) or not math.isfinite(float(v)):
            continue
        x = rec.get(X_KEY, i)
        if not _is_number(x) or not math.isfinite(float(x)):
            continue
        xs.append(float(x))
        ys.append(float(v))
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


def smooth(y: np.ndarray, span: int | None = None) -> np.ndarray:
    """Debiased exponential moving average (as TensorBoard's smoothing).

    Args:
        y: (N,) values.
        span: effective window in points; default N // 10 clamped to [1, 50], so that a
            short run is barely smoothed and a long one still shows its trend.

    Returns:
        (N,) smoothed values; the first point equals ``y[0]`` (no pull towards zero).
    """
    n = len(y)
    if span is None:
        span = min(max(n // 10, 1), 50)
    beta = 1.0 - 2.0 / (span + 1.0)
    out = np.empty(n, dtype=np.float64)
    acc, norm = 0.0, 0.0
    for i, v in enumerate(y):
        acc = beta * acc + (1.0 - beta) * v
        norm = beta * norm + (1.0 - beta)
        out[i] = acc / norm
    return out


def _group(keys: Sequence[str]) -> list[list[str]]:
    """Keys sharing the part before the first '/' share a panel (Loss/G with Loss/D)."""
    groups: dict[str, list[str]] = {}
    for k in keys:
        groups.setdefault(k.split("/", 1)[0] if "/" in k else k, []).append(k)
    return list(groups.values())


def plot_loss_curves(
    records: Sequence[dict[str, Any]],
    path: Path,
    keys: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Draw metrics over training progress and save the figure as a PNG, atomically.

    Each key gets a light raw line and a smoothed line of the same colour; keys with the
    same prefix (``Loss/G``, ``Loss/D``) share one panel. Missing, non-numeric and
    non-finite values are skipped point by point, so a NaN loss does not hide the rest.

    Args:
        records: one dict per logging interval, e.g.
            ``{"kimg": 1.2, "Loss/G": 0.8, "Loss/D": 1.3, "D/real": 0.4, "D/fake": -0.2}``;
            without ``kimg`` the record index is used as x.
        path: the PNG to write.
        keys: which metrics to draw; default every numeric key except ``kimg``.
        title: optional figure title.

    Returns:
        ``path``. Empty input (or keys with no data) gives a picture that says so.
    """
    keys = list(keys) if keys is not None else _default_keys(records)
    groups = _group(keys) or [[]]
    fig = new_figure(6.4, 2.4 * len(groups) + 0.4)
    axes = fig.subplots(len(groups), 1, squeeze=False)[:, 0]
    for ax, group in zip(axes, groups, strict=True):
        drawn = False
        for ci, key in enumerate(group):
            x, y = _series(records, key)
            if len(x) == 0:
                continue
            color = f"C{ci % 10}"
            order = np.argsort(x, kind="stable")
            x, y = x[order], y[order]
            if len(x) == 1:  # a line through one point is invisible: mark it instead
                ax.plot(x, y, "o", color=color, label=key)
            else:
                ax.plot(x, y, color=color, alpha=0.25, linewidth=0.8)
                ax.plot(x, smooth(y), color=color, linewidth=1.6, label=key)
            drawn = True
        if drawn:
            ax.legend(loc="best", fontsize="small", frameon=False)
            ax.grid(True, alpha=0.3)
        else:
            what = ", ".join(group) if group else "metrics"
            ax.text(
                0.5,
                0.5,
                f"no data for {what}",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="0.4",
            )
        ax.set_xlabel(X_KEY)
        if group:
            ax.set_ylabel(group[0].split("/", 1)[0])
    if title:
        fig.suptitle(for_plot(title))
    return save_png(fig, path)
