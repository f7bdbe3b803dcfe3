"""Loading a generator for sampling: from an export folder, a run folder or a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deepfake_lab.errors import UserError
from deepfake_lab.hashing import weights_sha256
from deepfake_lab.models import GENERATORS
from deepfake_lab.models.export_format import (
    EXPORT_FORMAT,
    build_model,
    is_export_folder,
    load_export,
)
from deepfake_lab.runs.checkpoint import load_checkpoint
from deepfake_lab.runs.run_dir import resolve_checkpoint


@dataclass
class LoadedGenerator:
    """A generator ready for sampling plus where it came from.

    Attributes:
        model: the generator in eval mode (G_ema for training checkpoints).
        identity: arch, kwargs, weights fingerprint, source path, kimg (when known).
    """

    model: torch.nn.Module
    identity: dict[str, Any]


def load_generator(source: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Load a generator from an export folder, a run folder or a training checkpoint.

    Args:
        source: export folder (``config.json`` + ``model.safetensors``), run folder (its
            newest checkpoint) or checkpoint file. Checkpoints give their G_ema.
        device: where to put the model.
    """
    src = Path(source)
    if is_export_folder(src):
        required = ("arch", "kwargs", "weights_sha256")
        meta, model = load_export(src, EXPORT_FORMAT, required, GENERATORS, "arch")
        identity = {k: meta.get(k) for k in ("arch", "kwargs", "weights_sha256", "kimg")}
        identity["source"] = str(src)
        return LoadedGenerator(model.to(device), identity)
    ckpt_path = resolve_checkpoint(src)
    ckpt = load_checkpoint(ckpt_path)
    if ckpt.get("kind") == "detector":
        raise UserError(f"{ckpt_path} is a detector checkpoint, not a GAN's")
    g = ckpt["arch"]["generator"]
    model = build_model(GENERATORS, g["name"], g["kwargs"], ckpt["G_ema"], str(ckpt_path))
    grown = ckpt.get("progressive")  # a progressive run's checkpoint: its current resolution
    if grown and int(grown["res"]) < model.size or grown and float(grown["alpha"]) < 1.0:
        model.set_resolution(int(grown["res"]), float(grown["alpha"]))
    identity = {
        "arch": g["name"],
        "kwargs": g["kwargs"],
        "weights_sha256": weights_sha256(ckpt["G_ema"]),
        "kimg": ckpt["nimg"] / 1000,
        "source": str(ckpt_path),
    }
    return LoadedGenerator(model.to(device), identity)
