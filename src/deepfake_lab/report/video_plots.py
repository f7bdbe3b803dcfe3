"""Video pictures as PNGs: P(fake) over time per face track (``detect --timeline``) and the
audio-visual sync reading (``av-sync --plot``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_lab.report.detection_plots import finish, say
from deepfake_lab.report.figure import new_figure, save_png
from deepfake_lab.safe_text import for_plot
from deepfake_lab.video.sync_signals import zscore

__all__ = ["plot_sync", "plot_timeline"]


def plot_timeline(
    tracks: list[Mapping], threshold: float, path: Path, title: str | None = None
) -> Path:
    """P(fake) over time, one line per face track, with the decision threshold.

    Args:
        tracks: dicts with ``id``, ``times`` (s) and ``scores`` (P(fake)), as in
            ``VideoScan.tracks``.
        threshold: the detector's threshold on the probability scale.
        path: where the PNG goes.
        title: optional title.
    """
    fig = new_figure(7.0, 3.2)
    ax = fig.add_subplot()
    drawn = False
    for t in tracks:
        if len(t["times"]):
            style = "-" if len(t["times"]) > 1 else "o"
            ax.plot(t["times"], t["scores"], style, lw=1.2, ms=3, label=f"track {t['id']}")
            drawn = True
    ax.axhline(threshold, color="k", ls="--", lw=0.8, label=f"threshold {threshold:.2f}")
    ax.set(xlabel="time (s)", ylabel="P(fake)", ylim=(-0.02, 1.02))
    if not drawn:
        say(ax, "no face found")
    finish(fig, ax, title, True)
    return save_png(fig, path)


def plot_sync(reading: Mapping[str, Any], path: Path, title: str | None = None) -> Path:
    """What ``av_sync`` saw: the band-passed signals over time and the correlation per lag.

    Args:
        reading: ``av_sync``'s result: ``times_s``, ``signals`` (name -> (T,) band-passed
            mouth signal), ``audio`` ((T,) band-passed envelope), ``lags_ms``,
            ``correlation``, ``offset_ms``, ``offset_uncertainty_ms``, ``confidence``,
            ``chance_p`` and ``chance_level`` (95th percentile of the surrogates' best
            correlation, or None).
        path: where the PNG goes.
        title: optional title (default: the video's file name).

    Top panel: each mouth signal and the audio envelope moved back by the offset (so that
    they line up where the reading is right), z-scored. Middle: the correlation at every
    lag, the peak with its uncertainty, and the level 5 % of unrelated audio signals reach.
    With ``windows`` in the reading, a third panel: each window's offset and uncertainty
    over time (filled: above chance, p <= 0.05).
    """
    windows = [w for w in reading.get("windows") or [] if "offset_ms" in w]
    fig = new_figure(7.5, 7.4 if windows else 5.2)
    axes = fig.subplots(3 if windows else 2, 1)
    top, bottom = axes[0], axes[1]
    t = np.asarray(reading["times_s"], np.float64)
    shift = reading["offset_ms"] / 1000.0
    for i, (name, v) in enumerate(reading["signals"].items()):
        top.plot(t, zscore(v), lw=1.2, color=f"C{i + 1}", label=f"mouth: {for_plot(name)}")
    top.plot(t - shift, zscore(reading["audio"]), lw=1.6, color="C0", label="audio, shifted back")
    top.set(xlabel="time (s)", ylabel="z-score (2-7 Hz band)")
    top.legend(loc="upper right", fontsize="small", frameon=False, ncols=3)
    lags = np.asarray(reading["lags_ms"], np.float64)
    corr = np.asarray(reading["correlation"], np.float64)
    bottom.plot(lags, corr, color="k", lw=1.2, label="correlation")
    off, unc = reading["offset_ms"], reading["offset_uncertainty_ms"]
    bottom.axvspan(off - unc, off + unc, color="C3", alpha=0.2, lw=0)
    bottom.axvline(off, color="C3", lw=1.2, label=f"offset {off:+.0f} +- {unc:.0f} ms")
    level = reading.get("chance_level")
    if level is not None:
        bottom.axhline(level, color="0.5", ls="--", lw=0.9, label="95 % of unrelated audio")
    bottom.axvline(0.0, color="0.7", lw=0.6)
    bottom.set(xlabel="lag (ms; positive: the audio lags)", ylabel="correlation")
    bottom.legend(loc="lower right", fontsize="small", frameon=False)
    if windows:
        ax = axes[2]
        mid = np.array([(w["start_s"] + w["end_s"]) / 2 for w in windows])
        offs = np.array([w["offset_ms"] for w in windows])
        errs = np.array([w["offset_uncertainty_ms"] for w in windows])
        strong = np.array([w["chance_p"] <= 0.05 for w in windows])
        ax.errorbar(mid, offs, yerr=errs, fmt="none", ecolor="0.5", lw=0.8)
        ax.plot(mid[strong], offs[strong], "o", color="C3", label="above chance")
        ax.plot(mid[~strong], offs[~strong], "o", mfc="white", color="C3", label="not")
        ax.axhline(reading["offset_ms"], color="C3", lw=0.8, ls="--", label="whole video")
        ax.set(xlabel="window centre (s)", ylabel="offset (ms)")
        ax.legend(loc="best", fontsize="small", frameon=False, ncols=3)
    name = title or Path(str(reading.get("path", ""))).name
    headline = f"confidence {reading['confidence']:.2f}, chance p {reading['chance_p']:.2f}"
    fig.suptitle(f"{for_plot(name)}: {headline}", fontsize="medium")
    return save_png(fig, path)
