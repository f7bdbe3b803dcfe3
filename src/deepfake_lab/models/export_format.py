"""The export format shared by generators and detectors: a folder with ``model.safetensors``
(the weights) and ``config.json`` (format, registry name, constructor arguments, fingerprint,
provenance; for detectors also the calibration and input handling).

Reading never unpickles anything, so exports from strangers are safe to open; the weights
are checked against the fingerprint in ``config.json``. Writing goes through a temp folder
renamed into place, so an export folder always holds a matching set.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from deepfake_lab.errors import UserError
from deepfake_lab.hashing import weights_sha256
from deepfake_lab.io import atomic_write, atomic_write_json, usual_permissions
from deepfake_lab.registry import Registry

EXPORT_FORMAT = "deepfake-lab/generator"
DETECTOR_FORMAT = "deepfake-lab/detector"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
KIND_OF_FORMAT = {EXPORT_FORMAT: "generator", DETECTOR_FORMAT: "detector"}


def is_export_folder(src: Path) -> bool:
    """Whether ``src`` holds ``config.json`` + ``model.safetensors``."""
    return (src / CONFIG_FILE).is_file() and (src / WEIGHTS_FILE).is_file()


def read_meta(src: Path) -> dict[str, Any]:
    try:
        meta = json.loads((src / CONFIG_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{src}/{CONFIG_FILE} is not valid JSON ({exc})") from None
    return meta if isinstance(meta, dict) else {}


def read_export(
    src: Path, fmt: str, required: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``config.json`` and the fingerprint-checked weights; every defect is a one-line UserError."""
    meta = read_meta(src)
    what = KIND_OF_FORMAT[fmt]
    if meta.get("format") != fmt:
        other = KIND_OF_FORMAT.get(str(meta.get("format")))
        hint = f" (it is a {other} export)" if other else ""
        raise UserError(f"{src}/{CONFIG_FILE} is not a deepfake-lab {what} export{hint}")
    missing = [k for k in required if k not in meta]
    if missing:
        raise UserError(f"{src}/{CONFIG_FILE} lacks {', '.join(missing)}; re-export the model")
    try:
        state = load_file(str(src / WEIGHTS_FILE))
    except Exception as exc:  # safetensors raises its own error type for damaged files
        raise UserError(f"{src}/{WEIGHTS_FILE} cannot be read ({exc}); re-export it") from None
    digest = weights_sha256(state)
    if digest != meta["weights_sha256"]:
        raise UserError(
            f"{src}/{WEIGHTS_FILE} does not match the fingerprint in {CONFIG_FILE} "
            f"({digest[:12]} != {str(meta['weights_sha256'])[:12]}); the files were changed "
            "or mixed up"
        )
    return meta, state


def build_model(
    registry: Registry[Any], name: str, kwargs: Any, state: dict[str, torch.Tensor]
) -> torch.nn.Module:
    """``registry.build(name, **kwargs)`` with ``state`` loaded, in eval mode without grads."""
    kind = registry.kind
    if name not in registry:
        raise UserError(
            f"unknown {kind} architecture {name!r} in the model files; "
            f"this version knows: {', '.join(registry.names())}"
        )
    if not isinstance(kwargs, dict):
        raise UserError(f"model files give {kwargs!r} as constructor arguments; expected a mapping")
    try:
        model = registry.build(name, **kwargs)
    except TypeError as exc:
        raise UserError(
            f"model files give arguments a {name} {kind} does not take: {exc}"
        ) from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(
            f"weights do not fit a {name} {kind} with {kwargs}: {str(exc).splitlines()[0]}"
        ) from None
    return model.eval().requires_grad_(False)


def check_export_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty; choose a new export folder")


def write_export(
    out: Path,
    state: dict[str, torch.Tensor],
    meta: dict[str, Any],
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write the weights, ``config.json`` and ``extra(folder)``'s files as one set.

    ``extra`` runs first (it may add files and fill in ``meta``); any failure leaves no
    folder behind, and ``out`` appears only complete.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        usual_permissions(tmp)
        if extra is not None:
            extra(tmp)
        blob = save(state, metadata={"format": meta["format"]})
        meta["weights_bytes"] = len(blob)
        atomic_write(tmp / WEIGHTS_FILE, lambda fh: fh.write(blob))
        atomic_write_json(tmp / CONFIG_FILE, meta)
        if out.exists():
            out.rmdir()  # empty, checked by the caller
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
