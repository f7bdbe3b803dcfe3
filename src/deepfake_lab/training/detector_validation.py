"""Scoring a detector run's validation split: per-epoch metrics, and the calibration of the
best checkpoint (temperature and decision threshold) at the end of training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit

from deepfake_lab.data.detection import DetectionDataset
from deepfake_lab.io import atomic_write_json
from deepfake_lab.metrics.calibration import binary_nll, calibration_record
from deepfake_lab.metrics.detection import detection_metrics
from deepfake_lab.models.detectors.inference import inference_copy
from deepfake_lab.runs.checkpoint import load_checkpoint, save_checkpoint
from deepfake_lab.training.detector_config import DetectorConfig
from deepfake_lab.training.logger import NullLogger, RunLogger


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    data: DetectionDataset,
    device: torch.device,
    batch: int = 128,
    tta: str = "none",
) -> np.ndarray:
    """Logits (N,) float64 of every image in ``data``, without augmentation, through the
    same fused inference copy, with the same test-time view (``tta``), that ``detect`` and
    ``eval detector`` score with."""
    scorer = inference_copy(model, tta=tta).module
    out = []
    for idx in torch.arange(len(data)).split(batch):
        x, _ = data.batch(idx, device)
        out.append(scorer(x).float().cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def validate(
    model: torch.nn.Module, val: DetectionDataset, device: torch.device, tta: str = "none"
) -> dict[str, Any]:
    """Validation metrics at the (uncalibrated) logit threshold 0, scored with the run's
    test-time view, plus ``loss``: the mean binary cross-entropy of the logits (what tells
    two checkpoints apart once ROC-AUC has saturated at 1.0)."""
    logits = predict_logits(model, val, device, tta=tta)
    labels = val.labels.numpy()
    return {**detection_metrics(labels, expit(logits), 0.5), "loss": binary_nll(labels, logits)}


def improves(auc: float, loss: float, best_auc: float, best_loss: float) -> bool:
    """Whether a validation result beats the best so far: a higher ROC-AUC, or the same
    ROC-AUC at a lower loss. A detector that separates its validation split from the first
    epoch on (ROC-AUC 1.0 every epoch) would otherwise keep its first epoch's weights, the
    least trained; the loss still sees its margins grow."""
    return auc > best_auc or (auc == best_auc and loss < best_loss)


def calibrate_best(
    best: Path,
    model: torch.nn.Module,
    cfg: DetectorConfig,
    val: DetectionDataset,
    device: torch.device,
    logger: RunLogger | NullLogger,
) -> None:
    """Fit temperature and threshold on the validation split, store them in ``best`` and in
    the run's ``calibration.json``.

    Args:
        model: a freshly built detector of the run's architecture (its weights are replaced
            by the best checkpoint's).
    """
    state = load_checkpoint(best)
    model = model.to(device)
    model.load_state_dict(state["model"])
    logits = predict_logits(model, val, device, tta=cfg.model.tta)
    labels = val.labels.numpy()
    c = cfg.calibration
    record = calibration_record(labels, logits, c.method, c.target_fpr, cfg.model.tta)
    state["calibration"] = record
    save_checkpoint(best, state)
    atomic_write_json(best.parent.parent / "calibration.json", record)
    logger.info(
        f"calibrated on {len(labels)} validation images: temperature {record['temperature']:.4g}, "
        f"logit threshold {record['logit_threshold']:.4g} ({c.method}, test-time view "
        f"{cfg.model.tta})"
    )
