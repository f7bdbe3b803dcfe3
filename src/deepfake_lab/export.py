"""Exporting trained generators and detectors as safetensors + JSON, and loading them back.

An export folder holds ``model.safetensors`` (the weights: G_ema for a GAN, the detector's
network for a detector) and ``config.json`` (format, registry name, constructor arguments,
fingerprint, provenance; for detectors also the calibration and the re-encoding they were
trained with). Loading never unpickles anything, so exports from strangers are safe to open.
Detector exports may also hold ``model.onnx`` (``--onnx``), checked against PyTorch first.
The files are written into a temp folder that is renamed into place, so an export folder
always holds a matching set.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save

from deepfake_lab import __version__
from deepfake_lab.errors import UserError
from deepfake_lab.hashing import weights_sha256
from deepfake_lab.io import atomic_write, atomic_write_json, usual_permissions
from deepfake_lab.models import GENERATORS
from deepfake_lab.models.detectors import DETECTORS
from deepfake_lab.registry import Registry
from deepfake_lab.training.checkpoint import load_checkpoint
from deepfake_lab.training.run_dir import resolve_checkpoint

if TYPE_CHECKING:
    from deepfake_lab.detect import LoadedDetector
    from deepfake_lab.onnx_export import OnnxCheck

EXPORT_FORMAT = "deepfake-lab/generator"
DETECTOR_FORMAT = "deepfake-lab/detector"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_KIND_OF_FORMAT = {EXPORT_FORMAT: "generator", DETECTOR_FORMAT: "detector"}


@dataclass
class LoadedGenerator:
    """A generator ready for sampling plus where it came from.

    Attributes:
        model: the generator in eval mode (G_ema for training checkpoints).
        identity: arch, kwargs, weights fingerprint, source path, kimg (when known).
    """

    model: torch.nn.Module
    identity: dict[str, Any]


@dataclass
class ExportResult:
    """What ``export_model`` wrote.

    Attributes:
        folder: the export folder.
        kind: ``"generator"`` or ``"detector"``.
        name: registry name of the architecture.
        onnx: the ONNX export and its equality check (detectors with ``onnx=True``), or None.
    """

    folder: Path
    kind: str
    name: str
    onnx: OnnxCheck | None = None


# -- shared by both kinds ----------------------------------------------------------------------
def is_export_folder(src: Path) -> bool:
    """Whether ``src`` holds ``config.json`` + ``model.safetensors``."""
    return (src / CONFIG_FILE).is_file() and (src / WEIGHTS_FILE).is_file()


def _read_meta(src: Path) -> dict[str, Any]:
    try:
        meta = json.loads((src / CONFIG_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{src}/{CONFIG_FILE} is not valid JSON ({exc})") from None
    return meta if isinstance(meta, dict) else {}


def _read_export(
    src: Path, fmt: str, required: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``config.json`` and the fingerprint-checked weights; every defect is a one-line UserError."""
    meta = _read_meta(src)
    what = _KIND_OF_FORMAT[fmt]
    if meta.get("format") != fmt:
        other = _KIND_OF_FORMAT.get(str(meta.get("format")))
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


def _build(
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


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty; choose a new export folder")


def _write_export(
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


def source_kind(source: str | Path) -> str:
    """``"detector"`` or ``"generator"``: what an export folder, run folder or checkpoint holds.

    Raises:
        UserError: ``source`` is missing or holds neither.
    """
    from deepfake_lab.models.detectors.registry import published_detector_spec

    src = Path(source)
    if published_detector_spec(source) is not None:  # e.g. "meso4:DF", released weights
        return "detector"
    if src.is_dir() and is_export_folder(src):
        return _KIND_OF_FORMAT.get(str(_read_meta(src).get("format")), "generator")
    best = [p for p in (src / "checkpoints" / "best.pt", src / "best.pt") if p.is_file()]
    # A detector run's calibrated best.pt is what gets exported; its other checkpoints are
    # detector checkpoints too, so the newest one tells the kind when best.pt is absent.
    ckpt = load_checkpoint(best[0] if src.is_dir() and best else resolve_checkpoint(src))
    return "detector" if ckpt.get("kind") == "detector" else "generator"


# -- generators --------------------------------------------------------------------------------
def load_generator(source: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Load a generator from an export folder, a run folder or a training checkpoint.

    Args:
        source: export folder (``config.json`` + ``model.safetensors``), run folder (its
            newest checkpoint) or checkpoint file. Checkpoints give their G_ema.
        device: where to put the model.
    """
    src = Path(source)
    if is_export_folder(src):
        meta, state = _read_export(src, EXPORT_FORMAT, ("arch", "kwargs", "weights_sha256"))
        model = _build(GENERATORS, meta["arch"], meta["kwargs"], state)
        identity = {k: meta.get(k) for k in ("arch", "kwargs", "weights_sha256", "kimg")}
        identity["source"] = str(src)
        return LoadedGenerator(model.to(device), identity)
    ckpt_path = resolve_checkpoint(src)
    ckpt = load_checkpoint(ckpt_path)
    if ckpt.get("kind") == "detector":
        raise UserError(f"{ckpt_path} is a detector checkpoint, not a GAN's")
    g = ckpt["arch"]["generator"]
    model = _build(GENERATORS, g["name"], g["kwargs"], ckpt["G_ema"])
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
    _check_out(out)
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
    return _write_export(out, state, meta)


# -- detectors ---------------------------------------------------------------------------------
def load_detector_export(src: str | Path, device: str | torch.device = "cpu") -> LoadedDetector:
    """Load a detector export folder (``deepfake_lab.detect.load_detector`` calls this).

    Raises:
        UserError: not a detector export, damaged or tampered files (fingerprint mismatch),
            unknown architecture, or an invalid calibration; always one line.
    """
    from deepfake_lab.detect import detector_from_parts

    src = Path(src)
    meta, state = _read_export(src, DETECTOR_FORMAT, ("name", "kwargs", "weights_sha256"))
    model = _build(DETECTORS, meta["name"], meta["kwargs"], state)
    identity = {
        "name": meta["name"],
        "kwargs": meta["kwargs"],
        "source": str(src),
        "weights_sha256": meta["weights_sha256"],
    }
    return detector_from_parts(
        model.to(device), meta.get("calibration"), identity, meta.get("reencode"), str(src)
    )


def export_detector(source: str | Path, out: str | Path, onnx: bool = False) -> ExportResult:
    """Write a detector's ``model.safetensors`` + ``config.json`` (+ ``model.onnx``) to ``out``.

    ``config.json`` holds ``format`` ("deepfake-lab/detector"), ``name``, ``kwargs``
    (``rebuild_kwargs()``: no external files needed), ``size`` (input px), ``input`` (how to
    feed it), ``calibration`` (temperature, threshold, ``logit_threshold``; null when
    uncalibrated), ``reencode``, ``weights_sha256``, ``weights_bytes``, provenance, and
    ``onnx`` (the ONNX file and its equality check, or null).

    Args:
        source: detector run folder (its calibrated ``best.pt``), checkpoint, export folder,
            or a detector with released weights (``meso4:DF``; exported uncalibrated).
        out: new or empty folder.
        onnx: also write ``model.onnx`` (needs the ``onnx`` extra) with a dynamic batch axis,
            checked against PyTorch on random inputs when onnxruntime is installed.

    Raises:
        UserError: ``out`` is not empty, the source is not a detector, the ONNX packages are
            missing, the detector cannot be exported to ONNX, or ONNX and PyTorch disagree.
    """
    from deepfake_lab.detect import load_detector
    from deepfake_lab.onnx_export import export_onnx, require_onnx

    out = Path(out)
    _check_out(out)
    if onnx:
        require_onnx()
    det = load_detector(source, "cpu")
    model = det.model
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta: dict[str, Any] = {
        "format": DETECTOR_FORMAT,
        "name": det.identity["name"],
        "kwargs": model.rebuild_kwargs(),
        "size": det.size,
        "input": {
            "layout": "NCHW float32 RGB",
            "range": [-1.0, 1.0],
            "height": det.size,
            "width": det.size,
            "output": "logits (B,), positive = fake; P(fake) = sigmoid(logit / temperature)",
        },
        "calibration": det.calibration,
        "reencode": det.reencode,
        "weights_sha256": weights_sha256(state),
        "exported_from": det.identity["source"],
        "package_version": __version__,
        "onnx": None,
    }
    checks: list[OnnxCheck] = []

    def write_onnx(folder: Path) -> None:
        check = export_onnx(model, folder / "model.onnx")
        checks.append(check)
        meta["onnx"] = check.to_dict()

    _write_export(out, state, meta, write_onnx if onnx else None)
    return ExportResult(out, "detector", meta["name"], checks[0] if checks else None)


def export_model(source: str | Path, out: str | Path, onnx: bool = False) -> ExportResult:
    """Export whatever ``source`` holds: a GAN's generator or a detector.

    Raises:
        UserError: see ``export_generator`` / ``export_detector``; ``onnx`` with a GAN.
    """
    out = Path(out)
    _check_out(out)  # before reading any checkpoint
    if source_kind(source) == "detector":
        return export_detector(source, out, onnx=onnx)
    if onnx:
        raise UserError(f"--onnx exports detectors; {source} holds a GAN generator")
    folder = export_generator(source, out)
    return ExportResult(folder, "generator", str(_read_meta(folder).get("arch")))


__all__ = [
    "DETECTOR_FORMAT",
    "EXPORT_FORMAT",
    "ExportResult",
    "LoadedGenerator",
    "export_detector",
    "export_generator",
    "export_model",
    "load_detector_export",
    "load_generator",
    "source_kind",
    "weights_sha256",
]
