"""Cross-source generalisation: train a detector on one fake source, test it on every source.

Rows are the training source, columns the test source; a cell is the ROC-AUC of the row's
detector on held-out reals against the column's held-out fakes. The diagonal is the usual
in-distribution score; the off-diagonal cells show how far a detector carries to a
generator it never saw (the question that matters for unseen generators). With the samples
of two GAN architectures as the two sources this is the cross-architecture test.

The held-out test part (reals and every source's fakes) is cut once with
:func:`split_samples` before any training and written to ``test.jsonl``; each detector
trains on a manifest of the remaining reals and its own source's remaining fakes, so no
test image is ever seen in training, and every row is tested on the very same images.
Layout::

    runs/NNNNN-cross-source/
        train-A.jsonl, train-B.jsonl, test.jsonl   the file lists
        00000-train-A/, 00001-train-B/             detector run folders
        cross_source.json, cross_source.png        the matrix and its heatmap
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from deepfake_lab import __version__
from deepfake_lab.data.detection import (
    FAKE,
    REAL,
    split_samples,
)
from deepfake_lab.devices import resolve_device
from deepfake_lab.errors import UserError
from deepfake_lab.evaluation.fresh_detector import (
    folder_samples,
    safe_name,
    train_and_score,
    write_manifest,
)
from deepfake_lab.io import atomic_write_json
from deepfake_lab.metrics.detection import bootstrap_intervals, detection_metrics
from deepfake_lab.runs.run_dir import create_run_dir


def _cell(
    labels: np.ndarray, logits: np.ndarray, threshold: float, n_boot: int, seed: int
) -> dict[str, Any]:
    m = detection_metrics(labels, logits, threshold)
    lo, hi = (None, None)
    if n_boot:
        lo, hi = bootstrap_intervals(labels, logits, threshold, n_boot=n_boot, seed=seed)["roc_auc"]
    return {
        "roc_auc": m["roc_auc"],
        "interval": [lo, hi],
        "eer": m["eer"],
        "detection_rate": m["recall"],
    }


def cross_source_matrix(
    real: str | Path | Sequence[str | Path],
    fakes: dict[str, str | Path],
    model: str = "npr",
    size: int | None = None,
    overrides: list[str] | None = None,
    out: str | Path = "runs",
    name: str = "cross-source",
    *,
    epochs: int | None = None,
    config: str | Path | None = None,
    test: float = 0.3,
    seed: int = 0,
    n_boot: int = 1000,
    device: str = "auto",
    json_path: str | Path | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train one detector per fake source and test each on every source.

    Args:
        real: folder(s) of real faces, shared by every row.
        fakes: source name -> folder of that source's fakes (e.g. ``{"dcgan": ...,
            "fastgan": ...}`` for the cross-architecture test).
        model, size, overrides, epochs, config: the detector, as :func:`train_detector`
            (training seeds come from the config's ``train.seed``).
        out, name: the result folder is ``out/NNNNN-name``.
        test: share of reals and of each source's fakes held out for testing, in (0, 1).
        seed: seed of the test split.
        n_boot: bootstrap resamples for each cell's 95% ROC-AUC interval (0: none).
        json_path: also write the result here.

    Returns:
        ``sources`` (S names), ``matrix`` (S x S ROC-AUC, row = train source, col = test
        source, None where undefined), ``intervals`` (S x S [low, high]), ``eer`` and
        ``detection_rate`` (S x S, at each detector's calibrated threshold), ``runs``
        (source -> detector run folder), ``n_train`` / ``n_test`` (images per source),
        ``run_dir``, ``plot`` (the heatmap PNG), ``model``, ``size``.

    Raises:
        UserError: no sources, a name clash with ``real``, missing or empty folders, or
            too few images to hold out a test part of every source.
    """

    if not fakes:
        raise UserError("give at least one fake source")
    if not 0.0 < test < 1.0:
        raise UserError(f"test share must be in (0, 1), got {test}")
    if "real" in fakes:
        raise UserError("a fake source may not be called 'real'")
    folders = [real] if isinstance(real, str | Path) else list(real)
    samples = [s for f in folders for s in folder_samples(f, REAL, "real")]
    for src, folder in fakes.items():
        samples += folder_samples(folder, FAKE, src)
    split = split_samples(samples, val=0.0, test=test, seed=seed)
    train_s, test_s = split["train"], split["test"]
    sources = list(fakes)
    for src in ["real", *sources]:
        if not any(s.source == src for s in test_s) or not any(s.source == src for s in train_s):
            raise UserError(f"too few {src!r} images to hold out a test part; add images")

    run_dir = create_run_dir(out, name)
    for sub in ("checkpoints", "samples"):  # holds detector runs, not checkpoints of its own
        (run_dir / sub).rmdir()
    write_manifest(run_dir / "test.jsonl", test_s)
    resolve_device(device)  # a device this machine lacks fails before any training
    runs: dict[str, str] = {}
    rows: list[list[dict[str, Any]]] = []
    for a in sources:
        manifest = write_manifest(
            run_dir / f"train-{safe_name(a)}.jsonl",
            [s for s in train_s if s.source in ("real", a)],
        )
        if console:
            console.rule(f"train on {a}", style="dim")
        det, run, data, logits = train_and_score(
            manifest,
            test_s,
            out=run_dir,
            name=f"train-{safe_name(a)}",
            what=f"training on {a}",
            config=config,
            overrides=overrides,
            model=model,
            size=size,
            epochs=epochs,
            device=device,
            console=console,
            progress=progress,
        )
        runs[a] = str(run)
        labels, src = data.labels.numpy(), np.asarray(data.sources, dtype=object)
        row = []
        for b in sources:
            mask = (labels == REAL) | (src == b)
            row.append(_cell(labels[mask], logits[mask], det.logit_threshold, n_boot, seed))
        rows.append(row)

    def grid(key: str) -> list[list[Any]]:
        return [[c[key] for c in row] for row in rows]

    result: dict[str, Any] = {
        "sources": sources,
        "rows": "train source",
        "cols": "test source",
        "matrix": grid("roc_auc"),
        "intervals": grid("interval"),
        "eer": grid("eer"),
        "detection_rate": grid("detection_rate"),
        "runs": runs,
        "n_train": {k: sum(s.source == k for s in train_s) for k in ["real", *sources]},
        "n_test": {k: sum(s.source == k for s in test_s) for k in ["real", *sources]},
        "model": model,
        "size": size,
        "test_share": test,
        "seed": seed,
        "run_dir": str(run_dir),
        "versions": {"deepfake-lab": __version__, "torch": torch.__version__},
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    result["plot"] = str(plot_matrix(result["matrix"], sources, run_dir / "cross_source.png"))
    atomic_write_json(run_dir / "cross_source.json", result)
    if json_path:
        atomic_write_json(Path(json_path), result)
    return result


def plot_matrix(
    matrix: Sequence[Sequence[float | None]],
    sources: Sequence[str],
    path: Path,
    title: str = "ROC-AUC: train on row, test on column",
) -> Path:
    """Heatmap of an S x S ROC-AUC matrix as a PNG, atomically.

    A diverging map centred on 0.5 (chance is white, red detects, blue is inverted);
    undefined cells (None) are grey and say ``n/a``.
    """
    from deepfake_lab.report.figure import new_figure, save_png

    m = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=np.float64)
    n = len(sources)
    side = 2.2 + 0.9 * n
    fig = new_figure(side + 1.0, side)
    ax = fig.subplots()
    ax.set_facecolor("0.85")  # NaN cells are left transparent: grey shows through
    im = ax.imshow(np.ma.masked_invalid(m), cmap="RdBu_r", vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            v = m[i, j]
            text = "n/a" if np.isnan(v) else f"{v:.3f}"
            dark = not np.isnan(v) and abs(v - 0.5) > 0.35
            ax.text(j, i, text, ha="center", va="center", color="white" if dark else "black")
    ax.set_xticks(range(n), list(sources), rotation=30, ha="right")
    ax.set_yticks(range(n), list(sources))
    ax.set_xlabel("test source")
    ax.set_ylabel("train source")
    ax.set_title(title, fontsize="medium")
    fig.colorbar(im, ax=ax, label="ROC-AUC (0.5 = chance)")
    return save_png(fig, path)
