"""A fresh detector trained and scored for a measurement: the shared part of the
cross-source matrix (:mod:`~deepfake_lab.evaluation.cross_source`) and detection resistance
(:mod:`~deepfake_lab.evaluation.resistance`).

Both cut a held-out test part before any training, train a detector on a manifest of the
rest with the same options, and score the test part as the detector was trained (size,
native-size floor, re-encoding).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from deepfake_lab.data.dataset import list_images
from deepfake_lab.data.detection import FAKE, REAL, DetectionDataset, DetectionSample
from deepfake_lab.devices import resolve_device
from deepfake_lab.errors import UserError
from deepfake_lab.evaluation.detector_eval import score
from deepfake_lab.io import atomic_write_text
from deepfake_lab.models.detectors.loading import LoadedDetector, load_detector
from deepfake_lab.training.detector_launch import train_detector


def folder_samples(folder: str | Path, label: int, source: str) -> list[DetectionSample]:
    """Every image of ``folder`` as samples of one label and source.

    Raises:
        UserError: the folder is missing or holds no image.
    """
    folder = Path(folder)
    kind = "real" if label == REAL else "fake"
    if not folder.is_dir():
        raise UserError(f"{kind} folder not found: {folder}")
    paths = list_images(folder)
    if not paths:
        raise UserError(f"no images found in {kind} folder {folder}")
    return [DetectionSample(p, label, source) for p in paths]


def write_manifest(path: Path, samples: Sequence[DetectionSample]) -> Path:
    """A detection manifest (JSONL, absolute paths) of ``samples``, atomically."""
    lines = []
    for s in samples:
        rec: dict[str, Any] = {
            "path": str(Path(s.path).resolve()),
            "label": "fake" if s.label == FAKE else "real",
            "source": s.source,
        }
        if s.group is not None:
            rec["group"] = s.group
        lines.append(json.dumps(rec))
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def safe_name(name: str) -> str:
    """``name`` with characters a run folder may not hold replaced by ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "source"


def score_samples(
    det: LoadedDetector, samples: Sequence[DetectionSample], device: torch.device
) -> tuple[DetectionDataset, np.ndarray]:
    """Decode ``samples`` as the detector was trained (size, re-encoding) and score them.

    Returns:
        ``(data, logits)``: the decoded set (undecodable files are skipped) and its
        logits (N,) float64.
    """
    data = DetectionDataset.from_samples(
        samples, det.size, reencode=det.reencode, native_floor=det.native_floor
    )
    return data, score(det, data, device)


def train_and_score(
    manifest: Path,
    test: Sequence[DetectionSample],
    *,
    out: Path,
    name: str,
    what: str,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    model: str | None = None,
    size: int | None = None,
    epochs: int | None = None,
    device: str = "auto",
    console: Console | None = None,
    progress: bool = True,
) -> tuple[LoadedDetector, Path, DetectionDataset, np.ndarray]:
    """Train a detector on ``manifest`` into ``out/NNNNN-name`` and score ``test`` with it.

    Args:
        manifest: the training images (JSONL of path, label, source).
        test: the held-out images it never saw.
        out, name: parent folder and name of its run folder.
        what: the detector in messages (``"training on A"``, ``"the detector's training"``).
        config, overrides, model, size, epochs, console, progress: as for
            :func:`~deepfake_lab.training.detector_launch.train_detector`.
        device: where to train and score (``auto``, ``cpu``, ``cuda``...).

    Returns:
        ``(detector, run folder, decoded test set, its logits (N,) float64)``.

    Raises:
        KeyboardInterrupt: the training was interrupted by a signal (nothing is measured).
        UserError: the training ended before its first checkpoint.
    """
    res = train_detector(
        manifest=manifest,
        config=config,
        # The manifest is ours (write_manifest: absolute paths to the user's folders).
        overrides=[*overrides, "data.manifest_outside=true"],
        model=model,
        size=size,
        epochs=epochs,
        out=out,
        name=name,
        device=device,
        console=console,
        progress=progress,
        tensorboard=False,
    )
    if res.signal is not None:
        raise KeyboardInterrupt(f"{what} was interrupted; nothing measured (see {res.run_dir})")
    if res.best is None:
        raise UserError(f"{what} ended ({res.status}) before a first checkpoint")
    dev = resolve_device(device)
    det = load_detector(res.run_dir, dev)
    data, logits = score_samples(det, test, dev)
    return det, res.run_dir, data, logits
