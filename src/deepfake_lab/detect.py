"""Loading trained detectors and scanning images: ``deepfake-lab detect``.

A detector comes from a run folder (its calibrated ``best.pt``), a detector checkpoint, or
an export folder (``model.safetensors`` + ``config.json``). Its calibration (temperature and
threshold, fitted on the validation split) travels with it; uncalibrated models use T = 1
and a 0.5 threshold, and say so.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_lab.data.dataset import load_rgb
from deepfake_lab.data.decode import IMAGE_SUFFIXES, DecodeError
from deepfake_lab.data.detection import parse_reencode
from deepfake_lab.errors import UserError
from deepfake_lab.io import atomic_write_json, atomic_write_text
from deepfake_lab.metrics.calibration import Calibration
from deepfake_lab.models.detectors import DETECTORS, build_detector
from deepfake_lab.training.checkpoint import list_checkpoints, load_checkpoint
from deepfake_lab.training.common import resolve_device


@dataclass
class LoadedDetector:
    """A detector in eval mode with its calibration and identity.

    Attributes:
        model: the network; ``model(x)`` gives logits (B,), positive = fake.
        temperature: divide logits by this before the sigmoid.
        logit_threshold: logit at or above which an image is called fake (decisions are
            taken on logits, which do not saturate; ``threshold`` is its probability).
        calibrated: whether temperature/threshold were fitted on validation data.
        identity: name, kwargs, source path, weights fingerprint.
        reencode: images are re-encoded this way before scoring, as in training.
    """

    model: torch.nn.Module
    temperature: float = 1.0
    logit_threshold: float = 0.0
    calibrated: bool = False
    identity: dict[str, Any] = field(default_factory=dict)
    reencode: str | None = None  # the re-encoding the detector was trained with (data.reencode)

    @property
    def size(self) -> int:
        return int(self.model.size)

    @property
    def threshold(self) -> float:
        """The decision threshold on the calibrated probability scale (for display)."""
        return float(1 / (1 + np.exp(-self.logit_threshold / self.temperature)))

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Raw logits (B,) for float images (B, 3, H, W) in [-1, 1]; fake if >= threshold."""
        return self.model(x).float()

    def probabilities_from_logits(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated P(fake): sigmoid(logit / T)."""
        return 1 / (1 + np.exp(-np.asarray(logits, np.float64) / self.temperature))


def _detector_checkpoint(source: Path) -> Path:
    if source.is_file():
        return source
    for candidate in (source / "checkpoints" / "best.pt", source / "best.pt"):
        if candidate.is_file():
            return candidate
    ckpts = list_checkpoints(source / "checkpoints")
    if ckpts:
        return ckpts[-1]
    raise UserError(
        f"no detector found in {source} (expected checkpoints/best.pt, a .pt "
        "checkpoint or an export folder)"
    )


def load_detector(source: str | Path, device: str | torch.device = "cpu") -> LoadedDetector:
    """Load a detector from a run folder, a checkpoint or an export folder."""
    from deepfake_lab.export import weights_sha256

    src = Path(source)
    if not src.exists():
        raise UserError(f"detector not found: {src}")
    if (src / "config.json").is_file() and (src / "model.safetensors").is_file():
        from deepfake_lab.export import load_detector_export

        return load_detector_export(src, device)
    ckpt_path = _detector_checkpoint(src)
    state = load_checkpoint(ckpt_path)
    if state.get("kind") != "detector":
        raise UserError(
            f"{ckpt_path} is not a detector checkpoint (a GAN run? use --init to "
            "start a detector from its discriminator)"
        )
    arch = state["arch"]
    if arch["name"] not in DETECTORS:
        raise UserError(f"unknown detector {arch['name']!r} in {ckpt_path}")
    model = build_detector(arch["name"], **arch["kwargs"])
    model.load_state_dict(state["model"])
    model.eval().requires_grad_(False).to(device)
    cal = state.get("calibration")
    identity = {
        "name": arch["name"],
        "kwargs": arch["kwargs"],
        "source": str(ckpt_path),
        "weights_sha256": weights_sha256(state["model"]),
    }
    reencode = state.get("config", {}).get("data", {}).get("reencode")
    if cal:
        c = Calibration.from_dict(cal)
        lt = float(cal["logit_threshold"])
        return LoadedDetector(model, c.temperature, lt, True, identity, reencode)
    return LoadedDetector(model, identity=identity, reencode=reencode)


def list_image_paths(paths: list[str | Path]) -> list[Path]:
    """Image files among ``paths`` (files as given, folders walked, sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(
                f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
            )
        elif p.is_file():
            out.append(p)
        else:
            raise UserError(f"not found: {p}")
    if not out:
        raise UserError("no images found in the given paths")
    return out


def detect_images(
    model: str | Path,
    paths: list[str | Path],
    json_path: str | Path | None = None,
    csv_path: str | Path | None = None,
    batch: int = 64,
    device: str = "auto",
) -> list[dict[str, Any]]:
    """Score images with a detector; one record per file.

    Returns:
        Records with ``path``, ``probability`` (calibrated P(fake)), ``label`` ("fake" |
        "real" | "error"), ``threshold``, ``model`` (a short id), and ``error`` for files that
        could not be read (they are reported, never fatal).
    """
    dev = resolve_device(device)
    det = load_detector(model, dev)
    files = list_image_paths(paths)
    reencode = parse_reencode(det.reencode)
    model_id = f"{det.identity['name']}:{det.identity['weights_sha256'][:12]}"
    records: list[dict[str, Any]] = []
    for start in range(0, len(files), batch):
        chunk, images = files[start : start + batch], []
        ok: list[Path] = []
        for f in chunk:
            try:
                img = load_rgb(f, det.size)
                images.append(reencode(img) if reencode else img)
                ok.append(f)
            except DecodeError as exc:
                records.append(
                    {
                        "path": str(f),
                        "probability": None,
                        "label": "error",
                        "threshold": det.threshold,
                        "model": model_id,
                        "error": str(exc),
                    }
                )
        if not images:
            continue
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        logits = det.logits(x.to(dev)).cpu().numpy()
        probs = det.probabilities_from_logits(logits)
        for f, z, p in zip(ok, logits, probs, strict=True):
            records.append(
                {
                    "path": str(f),
                    "probability": float(p),
                    "label": "fake" if z >= det.logit_threshold else "real",
                    "threshold": det.threshold,
                    "model": model_id,
                }
            )
    records.sort(key=lambda r: r["path"])
    if json_path:
        atomic_write_json(
            Path(json_path),
            {"model": det.identity, "calibrated": det.calibrated, "results": records},
        )
    if csv_path:
        buf = io.StringIO()
        w = csv.DictWriter(buf, ["path", "probability", "label", "threshold", "model", "error"])
        w.writeheader()
        for r in records:
            w.writerow(r)
        atomic_write_text(Path(csv_path), buf.getvalue())
    return records
