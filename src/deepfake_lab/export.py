"""Exporting trained generators as safetensors + JSON, and loading them back.

An export folder holds ``model.safetensors`` (the G_ema weights) and ``config.json``
(registry name, constructor arguments, fingerprint, provenance). Loading it never unpickles
anything, so exports from strangers are safe to open.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from deepfake_lab import __version__
from deepfake_lab.errors import UserError
from deepfake_lab.io import atomic_write, atomic_write_json
from deepfake_lab.models import GENERATORS, build_generator
from deepfake_lab.training.checkpoint import load_checkpoint
from deepfake_lab.training.run_dir import resolve_checkpoint

EXPORT_FORMAT = "deepfake-lab/generator"


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    """A fingerprint of a state dict: sha256 over sorted names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass
class LoadedGenerator:
    """A generator ready for sampling plus where it came from.

    Attributes:
        model: the generator in eval mode (G_ema for training checkpoints).
        identity: arch, kwargs, weights fingerprint, source path, kimg (when known).
    """

    model: torch.nn.Module
    identity: dict[str, Any]


def _build(arch: str, kwargs: dict[str, Any], state: dict[str, torch.Tensor]) -> torch.nn.Module:
    if arch not in GENERATORS:
        raise UserError(
            f"unknown generator architecture {arch!r} in the model files; "
            f"this version knows: {', '.join(GENERATORS.names())}"
        )
    if not isinstance(kwargs, dict):
        raise UserError(f"model files give {kwargs!r} as constructor arguments; expected a mapping")
    try:
        model = build_generator(arch, **kwargs)
    except TypeError as exc:
        raise UserError(
            f"model files give arguments a {arch} generator does not take: {exc}"
        ) from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(
            f"weights do not fit a {arch} generator with {kwargs}: {str(exc).splitlines()[0]}"
        ) from None
    return model.eval().requires_grad_(False)


def _load_export(src: Path, device: str | torch.device) -> LoadedGenerator:
    """Load and check an export folder; every defect is a one-line UserError."""
    try:
        meta = json.loads((src / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{src}/config.json is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise UserError(f"{src}/config.json is not a deepfake-lab generator export")
    missing = [k for k in ("arch", "kwargs", "weights_sha256") if k not in meta]
    if missing:
        raise UserError(f"{src}/config.json lacks {', '.join(missing)}; re-export the model")
    try:
        state = load_file(str(src / "model.safetensors"))
    except Exception as exc:  # safetensors raises its own error type for damaged files
        raise UserError(f"{src}/model.safetensors cannot be read ({exc}); re-export it") from None
    digest = weights_sha256(state)
    if digest != meta["weights_sha256"]:
        raise UserError(
            f"{src}/model.safetensors does not match the fingerprint in config.json "
            f"({digest[:12]} != {str(meta['weights_sha256'])[:12]}); the files were changed "
            "or mixed up"
        )
    model = _build(meta["arch"], meta["kwargs"], state)
    identity = {k: meta.get(k) for k in ("arch", "kwargs", "weights_sha256", "kimg")}
    identity["source"] = str(src)
    return LoadedGenerator(model.to(device), identity)


def load_generator(source: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Load a generator from an export folder, a run folder or a training checkpoint.

    Args:
        source: export folder (``config.json`` + ``model.safetensors``), run folder (its
            newest checkpoint) or checkpoint file. Checkpoints give their G_ema.
        device: where to put the model.
    """
    src = Path(source)
    if (src / "config.json").is_file() and (src / "model.safetensors").is_file():
        return _load_export(src, device)
    ckpt_path = resolve_checkpoint(src)
    ckpt = load_checkpoint(ckpt_path)
    g = ckpt["arch"]["generator"]
    model = _build(g["name"], g["kwargs"], ckpt["G_ema"])
    identity = {
        "arch": g["name"],
        "kwargs": g["kwargs"],
        "weights_sha256": weights_sha256(ckpt["G_ema"]),
        "kimg": ckpt["nimg"] / 1000,
        "source": str(ckpt_path),
    }
    return LoadedGenerator(model.to(device), identity)


def export_generator(checkpoint: str | Path, out: str | Path) -> Path:
    """Write ``out/model.safetensors`` and ``out/config.json`` from a run or checkpoint.

    Returns:
        The export folder.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty; choose a new export folder")
    loaded = load_generator(checkpoint)
    state = {k: v.contiguous() for k, v in loaded.model.state_dict().items()}
    meta = {
        "format": EXPORT_FORMAT,
        "arch": loaded.identity["arch"],
        "kwargs": loaded.identity["kwargs"],
        "weights_sha256": weights_sha256(state),
        "kimg": loaded.identity["kimg"],
        "exported_from": loaded.identity["source"],
        "package_version": __version__,
    }
    # Both files are written into a temp folder that is renamed into place, so an export
    # folder always holds a matching pair.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        blob = save(state, metadata={"format": EXPORT_FORMAT})
        atomic_write(tmp / "model.safetensors", lambda fh: fh.write(blob))
        atomic_write_json(tmp / "config.json", meta)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


__all__ = ["LoadedGenerator", "export_generator", "load_generator", "weights_sha256"]
