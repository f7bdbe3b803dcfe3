"""``train_fusion``: the Python API behind ``deepfake-lab train fusion``.

Members are any detectors ``detect`` can load (run folders, checkpoints, exports, released
weights such as ``meso4:DF``). The labelled images given (real and fake folders, a
manifest, and/or pseudo-fakes made from the reals) are split by file into two halves that
no member should have trained on:

- *fit*: the stacker (logistic regression over the members' calibrated logits, from
  scikit-learn) and the feature statistics of the out-of-distribution score (mean and
  Ledoit-Wolf shrunk precision of the pooled member features);
- *calibration*: the decision threshold (equal-error point, or a target false-positive
  rate) and the OOD threshold (the ``ood_quantile`` of the calibration images' scores:
  that share of images like these is called in-distribution).

The result is a detector run folder (``checkpoints/best.pt``, ``fusion.json``,
``index.html``) that ``detect``, ``eval detector`` and ``export`` load like any other.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.covariance import LedoitWolf
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from deepfake_lab.data.detection import DetectionDataset, collect_samples, split_samples
from deepfake_lab.data.pseudo import PseudoFakeSet
from deepfake_lab.devices import resolve_device
from deepfake_lab.errors import UserError
from deepfake_lab.faces.landmarks import Landmarker
from deepfake_lab.io import atomic_write_json
from deepfake_lab.metrics.calibration import calibration_record
from deepfake_lab.models.detectors.fusion import FusionDetector
from deepfake_lab.models.detectors.loading import load_detector
from deepfake_lab.report.html import Section, Table, write_report
from deepfake_lab.runs.checkpoint import save_checkpoint
from deepfake_lab.runs.run_dir import create_run_dir
from deepfake_lab.training.common import seed_everything


def _member_spec(source: str, device: torch.device) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(spec, state)`` of one member: registry name, kwargs, id, calibration and input
    size (the built model's: released weights leave ``size`` out of their kwargs)."""
    det = load_detector(source, device)
    spec = {
        "size": int(det.model.size),
        "name": det.identity["name"],
        "kwargs": det.model.rebuild_kwargs(),
        "id": det.model_id,
        "source": str(source),
        "temperature": float(det.temperature),
        "logit_threshold": float(det.logit_threshold),
        "tta": det.tta,
    }
    if spec["name"] == "fusion":
        raise UserError(f"{source} is a fusion; members must be single detectors")
    return spec, det.model.state_dict()


@torch.no_grad()
def _analyse(model: FusionDetector, data: DetectionDataset, batch: int = 64) -> dict:
    zs, feats = [], []
    for idx in torch.arange(len(data)).split(batch):
        x, _ = data.batch(idx)
        z, f = model.member_outputs(x)
        zs.append(z.numpy())
        feats.append(f.numpy())
    return {"z": np.concatenate(zs).astype(np.float64), "f": np.concatenate(feats)}


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    return float(roc_auc_score(labels, scores)) if len(set(labels.tolist())) == 2 else None


def train_fusion(
    members: list[str | Path],
    real: list[str | Path] | None = None,
    fake: list[str | Path] | None = None,
    manifest: str | Path | None = None,
    *,
    manifest_outside: bool = False,
    pseudo_fake: list[str] | None = None,
    size: int | None = None,
    out: str | Path = "runs",
    name: str = "fusion",
    seed: int = 0,
    margin: float = 2.0,
    ood_quantile: float = 0.99,
    calibration: str = "eer",
    target_fpr: float = 0.01,
    landmarks: str = "auto",
    device: str = "auto",
) -> Path:
    """Fit a fusion of ``members`` on labelled images; returns the run folder.

    Args:
        members: detectors to combine (at least two), anything ``load_detector`` reads.
        real, fake, manifest: the labelled images (members should not have seen them).
        manifest_outside: accept manifest paths outside the manifest's folder.
        pseudo_fake: also make pseudo-fakes from the reals (``sbi``, ``sbi-mouth``).
        size: the fusion's input size (default: the largest member size).
        out, name: run folder parent and name.
        seed: split and pseudo-fake seed.
        margin: calibrated-logit margin beyond which members count as disagreeing.
        ood_quantile: share of calibration images below the OOD threshold.
        calibration: ``eer`` or ``fpr`` (with ``target_fpr``).
        landmarks: pseudo-fake landmark source.
        device: ``auto``, ``cpu`` or ``cuda``.

    Raises:
        UserError: fewer than two members, a member that cannot be loaded, no data, or
            a half without both classes.
    """
    if len(members) < 2:
        raise UserError("a fusion needs at least two --member detectors")
    if not 0.5 <= ood_quantile < 1:
        raise UserError(f"ood_quantile must be in [0.5, 1), got {ood_quantile}")
    if calibration not in ("eer", "fpr"):
        raise UserError(f"calibration must be eer or fpr, got {calibration!r}")
    dev = resolve_device(device)
    seed_everything(seed)
    specs, states = zip(*(_member_spec(str(m), dev) for m in members), strict=True)
    # At the largest member's size, every member sees an image as it would alone (files are
    # decoded to that size); smaller members get it area-averaged down.
    side = int(size or max(s["size"] for s in specs))
    samples = collect_samples(
        [Path(p) for p in real or []],
        [Path(p) for p in fake or []],
        Path(manifest) if manifest else None,
        require_fake=not pseudo_fake,
        manifest_outside=manifest_outside,
    )
    halves = split_samples(samples, val=0.5, seed=seed)
    sets = {}
    for part, split in (("fit", "train"), ("calibration", "val")):
        data = DetectionDataset.from_samples(halves[split], side)
        if pseudo_fake:
            made = PseudoFakeSet.build(data, pseudo_fake, Landmarker(landmarks), paired=False)
            data = made.materialise(seed + (part == "calibration"))
        if len(set(data.labels.tolist())) < 2:
            raise UserError(f"the {part} half holds one class only; give more images")
        sets[part] = data
    model = FusionDetector(size=side, members=list(specs), margin=margin).to(dev).eval()
    for det, state in zip(model.members, states, strict=True):
        det.load_state_dict(state)
    fit, cal = _analyse(model, sets["fit"]), _analyse(model, sets["calibration"])
    y_fit, y_cal = sets["fit"].labels.numpy(), sets["calibration"].labels.numpy()

    lr = LogisticRegression(C=1.0, max_iter=1000).fit(fit["z"], y_fit)
    lw = LedoitWolf().fit(fit["f"])
    with torch.no_grad():
        model.stacker.weight.copy_(torch.as_tensor(lr.coef_, dtype=torch.float32))
        model.stacker.bias.copy_(torch.as_tensor(lr.intercept_, dtype=torch.float32))
        model.ood_mean.copy_(torch.as_tensor(lw.location_, dtype=torch.float32))
        model.ood_precision.copy_(torch.as_tensor(lw.precision_, dtype=torch.float32))
    logits_cal = lr.decision_function(cal["z"])
    ood_cal = model.ood_score(torch.as_tensor(cal["f"], dtype=torch.float32)).numpy()
    model.ood_threshold = float(np.quantile(ood_cal, ood_quantile))
    record = calibration_record(y_cal, logits_cal, calibration, target_fpr)
    thr = record["logit_threshold"]
    verdicts = model.verdict(
        torch.as_tensor(cal["z"]), torch.as_tensor(ood_cal), torch.as_tensor(logits_cal), thr
    )
    uncertain = float(np.mean([v[0] == "uncertain" for v in verdicts]))
    summary = {
        "members": [
            {
                "id": s["id"],
                "source": s["source"],
                "coef": float(c),
                "calibration_roc_auc": _auc(y_cal, cal["z"][:, i]),
            }
            for i, (s, c) in enumerate(zip(specs, lr.coef_[0], strict=True))
        ],
        "intercept": float(lr.intercept_[0]),
        "size": side,
        "fit": {"n": len(y_fit), "fake": int(y_fit.sum()), "sources": sets["fit"].counts()},
        "calibration": {
            "n": len(y_cal),
            "fake": int(y_cal.sum()),
            "sources": sets["calibration"].counts(),
            "roc_auc": _auc(y_cal, logits_cal),
            "uncertain_share": uncertain,
            "logit_threshold": float(thr),
            "ood_threshold": model.ood_threshold,
            "ood_quantile": ood_quantile,
            "margin": margin,
        },
    }
    run_dir = create_run_dir(out, name)
    config = {
        "data": {
            "real": [str(p) for p in real or []],
            "fake": [str(p) for p in fake or []],
            "pseudo_fake": list(pseudo_fake or []),
            "size": side,
            "reencode": None,
        },
        "model": {"name": "fusion"},
        "fusion": {
            "members": [str(m) for m in members],
            "margin": margin,
            "ood_quantile": ood_quantile,
            "calibration": calibration,
            "seed": seed,
        },
    }
    save_checkpoint(
        run_dir / "checkpoints" / "best.pt",
        {
            "kind": "detector",
            "config": config,
            "model": model.state_dict(),
            "arch": {"name": "fusion", "kwargs": model.rebuild_kwargs()},
            "calibration": record,
            "step": 0,
        },
    )
    atomic_write_json(run_dir / "calibration.json", record)
    atomic_write_json(run_dir / "fusion.json", summary)
    _write_report(run_dir, summary)
    return run_dir


def _fmt(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def _write_report(run_dir: Path, summary: dict[str, Any]) -> Path:
    c = summary["calibration"]
    rows = [
        [m["id"], f"{m['coef']:.3f}", _fmt(m["calibration_roc_auc"])] for m in summary["members"]
    ]
    rows.append(["fusion", f"intercept {summary['intercept']:.3f}", _fmt(c["roc_auc"])])
    sections = [
        Section(
            heading="Members",
            paragraphs=[
                f"Fitted on {summary['fit']['n']} images, calibrated on {c['n']} others "
                f"({c['fake']} fake). {100 * c['uncertain_share']:.1f}% of the calibration "
                "images are called uncertain: a member confident past the margin "
                f"({c['margin']}) against another member or against the verdict, or an OOD "
                f"score above the {c['ood_quantile']} quantile "
                f"({c['ood_threshold']:.3g})."
            ],
            tables=[Table(header=["member", "weight", "ROC-AUC (calibration half)"], rows=rows)],
        )
    ]
    return write_report(run_dir / "index.html", f"deepfake-lab fusion {run_dir.name}", sections)
