"""The GAN run report: loss curves PNG and ``index.html`` in the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from deepfake_lab.config import flatten
from deepfake_lab.io import read_jsonl
from deepfake_lab.report.html import ReportImage, Section, Table, write_report
from deepfake_lab.report.plots import plot_loss_curves

LOSS_KEYS = ["Loss/G", "Loss/D", "Loss/R1", "Loss/D_aux", "D/real", "D/fake", "Grad/G", "Grad/D"]


def training_records(run_dir: Path, kind: str = "train") -> list[dict[str, Any]]:
    """``metrics.jsonl`` records of one kind (``train``: losses per logging interval;
    ``eval``: generator metrics) in kimg order, keeping only the timeline that led to the
    current state: after a resume, records past the resume point from the abandoned attempt
    are superseded by the new ones."""
    kept: list[dict[str, Any]] = []
    for rec in read_jsonl(Path(run_dir) / "metrics.jsonl"):
        if "kimg" not in rec or rec.get("kind", "train") != kind:
            continue
        while kept and kept[-1]["kimg"] >= rec["kimg"]:
            kept.pop()
        kept.append(rec)
    return kept


def write_gan_report(run_dir: str | Path, extra_sections: list[Section] | None = None) -> Path:
    """Write ``loss_curves.png`` and ``index.html`` for a GAN run; returns the HTML path."""
    run_dir = Path(run_dir)
    records = training_records(run_dir)
    sections: list[Section] = []
    cfg_path = run_dir / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text()) if cfg_path.exists() else {}
    if records:
        last = records[-1]
        model = cfg.get("model", {})
        sections.append(
            Section(
                heading="Run",
                tables=[
                    Table(
                        header=["arch", "size", "kimg", "batch", "images/s (last interval)"],
                        rows=[
                            [
                                model.get("arch"),
                                _size_cell(model, cfg.get("train", {})),
                                last["kimg"],
                                cfg.get("train", {}).get("batch"),
                                f"{last.get('Speed/images_per_sec') or 0:.1f}",
                            ]
                        ],
                    )
                ],
            )
        )
    grids = sorted((run_dir / "samples").glob("grid-*.png"))
    images = []
    if grids:
        images.append(
            ReportImage(
                grids[-1].relative_to(run_dir),
                f"G_ema samples from fixed latents, {grids[-1].stem}",
            )
        )
    if (run_dir / "samples" / "reals.png").exists():
        images.append(ReportImage("samples/reals.png", "training images"))
    if images:
        sections.append(Section(heading="Samples", images=images))
    if len(grids) > 1:
        progress = [
            ReportImage(g.relative_to(run_dir), g.stem) for g in grids[:: max(1, len(grids) // 4)]
        ]
        sections.append(Section(heading="Progress", images=progress))
    if records:
        plot_loss_curves(
            records, run_dir / "loss_curves.png", keys=[k for k in LOSS_KEYS if k in records[-1]]
        )
        sections.append(
            Section(
                heading="Training curves",
                images=[ReportImage("loss_curves.png", "losses and logits")],
            )
        )
    sections.extend(_metric_sections(run_dir))
    sections.extend(extra_sections or [])
    if cfg:
        sections.append(
            Section(
                heading="Config",
                paragraphs=["The resolved config (config.yaml):"],
                tables=[
                    Table(header=["key", "value"], rows=[[k, v] for k, v in flatten(cfg).items()])
                ],
            )
        )
    return write_report(run_dir / "index.html", f"deepfake-lab run {run_dir.name}", sections)


def _metric_sections(run_dir: Path) -> list[Section]:
    """A table and a curve of the generator metrics measured during training, if any."""
    evals = training_records(run_dir, "eval")
    if not evals:
        return []
    keys = [k for k in evals[-1] if k.startswith("Metrics/")]
    rows = [
        [r["kimg"], *(f"{r.get(k):.4g}" if r.get(k) is not None else "" for k in keys)]
        for r in evals
    ]
    last = evals[-1]
    paragraphs = [
        f"Feature space {last['feature_space']}: {last['num_fake']} generated vs "
        f"{last['num_real']} reference images. A Frechet distance is called FID only in the "
        "Inception-v3 space; elsewhere it carries its space's label and is not comparable "
        "with published FIDs."
    ]
    best = run_dir / "checkpoints" / "best.json"
    if best.exists():
        import json

        b = json.loads(best.read_text(encoding="utf-8"))
        paragraphs.append(
            f"Best {b['name']} {b['value']:.4g} at kimg {b['kimg']}: checkpoints/best.pt."
        )
    images = []
    if len(evals) > 1:
        plot_loss_curves(evals, run_dir / "metric_curves.png", keys=keys)
        images.append(ReportImage("metric_curves.png", "metrics over training"))
    header = ["kimg", *(k.removeprefix("Metrics/") for k in keys)]
    return [
        Section(
            heading="Generator metrics",
            paragraphs=paragraphs,
            tables=[Table(header=header, rows=rows)],
            images=images,
        )
    ]


def _size_cell(model: dict, train: dict) -> str:
    """The image size, with the progressive schedule when the run grew to it."""
    size = model.get("size")
    if not train.get("progressive"):
        return str(size)
    from deepfake_lab.training.progressive import ProgressiveSchedule

    try:
        s = ProgressiveSchedule(
            int(train["progressive_start"]), int(size), float(train["progressive_kimg"])
        )
    except Exception:  # a stored config this version cannot read: show the size alone
        return str(size)
    return f"{size} ({s.describe()})"
