"""The detector run report: what the detector learnt from, how training went, where its
threshold sits. ``index.html`` in the run folder, pictures beside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from deepfake_lab.config import flatten
from deepfake_lab.data.pseudo import PseudoFakeSet
from deepfake_lab.report.grid import save_grid
from deepfake_lab.report.html import ReportImage, Section, Table, write_report
from deepfake_lab.report.plots import plot_loss_curves
from deepfake_lab.training.report import training_records
from deepfake_lab.training.seam import SeamHead

PSEUDO_PREVIEW = "pseudo_fakes.png"
SEAM_PREVIEW = "seams.png"
CURVE_KEYS = ["Loss/train", "Loss/seam", "Acc/train", "Val/roc_auc", "Val/eer", "Grad/norm", "LR"]


def save_pseudo_preview(train: PseudoFakeSet, path: Path, n: int = 8, seed: int = 0) -> Path:
    """A grid of ``n`` columns: real faces, their pseudo-fakes, the blend masks, and the
    difference (x4) between fake and real, so a person can see what the detector learns from.
    """
    reals, fakes, masks = train.preview(n, seed)
    mask_rgb = np.repeat(np.rint(masks * 255).astype(np.uint8)[..., None], 3, axis=-1)
    diff = np.clip(np.abs(fakes.astype(np.int16) - reals.astype(np.int16)) * 4, 0, 255)
    rows = np.concatenate([reals, fakes, mask_rgb, diff.astype(np.uint8)])
    return save_grid(rows, path, nrow=len(reals))


def save_seam_preview(
    train: PseudoFakeSet,
    seam: SeamHead,
    model: torch.nn.Module,
    path: Path,
    n: int = 8,
    seed: int = 0,
) -> Path:
    """A grid of ``n`` columns: pseudo-fakes, the boundary they were blended along (the
    target), the boundary the head finds in them, then the real faces they were made from and
    what the head finds there (nothing, if it learnt the seam and not softness)."""
    reals, fakes, masks = train.preview(n, seed)
    device = next(model.parameters()).device
    x = torch.from_numpy(np.concatenate([fakes, reals])).permute(0, 3, 1, 2)
    x = x.to(device=device, dtype=torch.float32).div(127.5).sub(1.0)
    was_training = model.training
    model.eval()
    try:
        prob = seam.predict(x, model)
    finally:
        model.train(was_training)
    size = reals.shape[1]
    prob = F.interpolate(prob[:, None], size=(size, size), mode="nearest")[:, 0].cpu().numpy()

    def grey(maps: np.ndarray) -> np.ndarray:
        return np.repeat(np.rint(np.clip(maps, 0, 1) * 255).astype(np.uint8)[..., None], 3, -1)

    k = len(reals)
    rows = [fakes, grey(4 * masks * (1 - masks)), grey(prob[:k]), reals, grey(prob[k:])]
    return save_grid(np.concatenate(rows), path, nrow=k)


def write_detector_report(run_dir: str | Path) -> Path:
    """Write ``training_curves.png`` and ``index.html`` for a detector run; returns the HTML."""
    run_dir = Path(run_dir)
    sections: list[Section] = []
    cfg_path = run_dir / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) if cfg_path.exists() else {}
    data = cfg.get("data", {})
    model = cfg.get("model", {})
    kinds = data.get("pseudo_fake") or []
    rows = [
        # model.name and data.size: runs written before the keys were renamed
        ["model", model.get("arch", model.get("name"))],
        ["size", model.get("size", data.get("size"))],
        ["real folders", ", ".join(data.get("real") or []) or "-"],
        ["fake folders", ", ".join(data.get("fake") or []) or "-"],
        ["pseudo-fakes", ", ".join(kinds) or "-"],
        ["resampling chain", "on" if cfg.get("resample", {}).get("enabled", True) else "off"],
        ["native size", data.get("native_size", "check")],
    ]
    sections.append(Section(heading="Run", tables=[Table(header=["", ""], rows=rows)]))
    pictures = [
        (
            PSEUDO_PREVIEW,
            "Pseudo-fakes",
            "Rows: real faces; the pseudo-fakes made from them; the blend masks; the difference "
            "between the two, times 4. The detector is trained to call the second row fake: "
            "it learns the seam, not a generator.",
            "self-blended pseudo-fakes and masks",
        ),
        (
            SEAM_PREVIEW,
            "Blend boundary",
            "Rows: pseudo-fakes; the boundary they were blended along (what the seam head is "
            "taught); the boundary the head finds in them after training; the real faces they "
            "were made from; what the head finds in those. A head that learnt the seam, not "
            "softness, finds nothing in the reals.",
            "blend boundaries, taught and found",
        ),
    ]
    for name, heading, text, alt in pictures:
        if (run_dir / name).exists():
            sections.append(
                Section(heading=heading, paragraphs=[text], images=[ReportImage(name, alt)])
            )
    records = training_records(run_dir)
    if records:
        keys = [k for k in CURVE_KEYS if any(k in r for r in records)]
        plot_loss_curves(records, run_dir / "training_curves.png", keys=keys)
        sections.append(
            Section(
                heading="Training curves",
                images=[ReportImage("training_curves.png", "loss, accuracy and validation")],
            )
        )
    cal = run_dir / "calibration.json"
    if cal.exists():
        record = json.loads(cal.read_text(encoding="utf-8"))
        sections.append(
            Section(
                heading="Calibration",
                paragraphs=["Fitted on the validation split (calibration.json)."],
                tables=[Table(header=["key", "value"], rows=[[k, v] for k, v in record.items()])],
            )
        )
    if cfg:
        sections.append(
            Section(
                heading="Config",
                tables=[
                    Table(header=["key", "value"], rows=[[k, v] for k, v in flatten(cfg).items()])
                ],
            )
        )
    return write_report(
        run_dir / "index.html", f"deepfake-lab detector run {run_dir.name}", sections
    )
