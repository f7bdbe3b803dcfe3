"""Exporting trained generators and detectors as safetensors + JSON.

An export folder holds ``model.safetensors`` (the weights: G_ema for a GAN, the detector's
network for a detector) and ``config.json`` (format, registry name, constructor arguments,
fingerprint, provenance; for detectors also the calibration and the re-encoding they were
trained with); the format and its reader live in :mod:`deepfake_lab.models.export_format`,
the loaders in ``models/generators/loading.py`` and ``models/detectors/loading.py``.
Detector exports may also hold ``model.onnx`` (``--onnx``), checked against PyTorch first.
The files are written into a temp folder that is renamed into place, so an export folder
always holds a matching set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepfake_lab import __version__
from deepfake_lab.errors import UserError
from deepfake_lab.hashing import weights_sha256
from deepfake_lab.models.detectors.loading import LoadedDetector, load_detector
from deepfake_lab.models.detectors.tta import check_tta, with_tta
from deepfake_lab.models.export_format import (
    DETECTOR_FORMAT,
    EXPORT_FORMAT,
    KIND_OF_FORMAT,
    check_export_out,
    is_export_folder,
    read_meta,
    write_export,
)
from deepfake_lab.models.generators.loading import load_generator
from deepfake_lab.runs.checkpoint import load_checkpoint
from deepfake_lab.runs.run_dir import resolve_checkpoint

if TYPE_CHECKING:
    from deepfake_lab.onnx_export import OnnxCheck


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
        return KIND_OF_FORMAT.get(str(read_meta(src).get("format")), "generator")
    best = [p for p in (src / "checkpoints" / "best.pt", src / "best.pt") if p.is_file()]
    # A detector run's calibrated best.pt is what gets exported; its other checkpoints are
    # detector checkpoints too, so the newest one tells the kind when best.pt is absent.
    ckpt = load_checkpoint(best[0] if src.is_dir() and best else resolve_checkpoint(src))
    return "detector" if ckpt.get("kind") == "detector" else "generator"


def export_generator(checkpoint: str | Path, out: str | Path) -> Path:
    """Write ``out/model.safetensors`` and ``out/config.json`` from a run or checkpoint.

    Returns:
        The export folder.
    """
    out = Path(out)
    check_export_out(out)
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
    return write_export(out, state, meta)


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
    from deepfake_lab.onnx_export import require_onnx

    out = Path(out)
    check_export_out(out)
    if onnx:
        require_onnx()
    return write_detector_export(load_detector(source, "cpu"), out, onnx=onnx)


def write_detector_export(
    det: LoadedDetector,
    out: Path,
    *,
    onnx: bool = False,
    calibration: dict[str, Any] | None = None,
    notes: dict[str, Any] | None = None,
    extra: Callable[[Path], None] | None = None,
) -> ExportResult:
    """Write ``det`` as an export folder (see :func:`export_detector`; ``out`` is checked).

    Args:
        det: a loaded detector.
        out: new or empty folder.
        onnx: also write ``model.onnx``.
        calibration: a calibration record (with ``logit_threshold``) replacing the
            detector's own, e.g. from ``deepfake-lab calibrate``.
        notes: more ``config.json`` entries (readers ignore keys they do not know).
        extra: writes more files into the folder before it is renamed into place.
    """
    from deepfake_lab.onnx_export import export_onnx

    model = det.model
    record = calibration if calibration is not None else det.calibration
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
        "calibration": record,
        "reencode": det.reencode,
        "native_floor": det.native_floor,
        "weights_sha256": weights_sha256(state),
        "exported_from": det.identity["source"],
        "package_version": __version__,
        "onnx": None,
        **(notes or {}),
    }
    checks: list[OnnxCheck] = []

    def write_files(folder: Path) -> None:
        if extra is not None:
            extra(folder)
        if onnx:
            # The graph scores as the threshold was fitted: with the record's test-time view.
            view = check_tta((record or {}).get("tta"), "calibration")
            check = export_onnx(with_tta(model, view), folder / "model.onnx")
            checks.append(check)
            meta["onnx"] = check.to_dict()

    write_export(out, state, meta, write_files)
    return ExportResult(out, "detector", meta["name"], checks[0] if checks else None)


def export_model(source: str | Path, out: str | Path, onnx: bool = False) -> ExportResult:
    """Export whatever ``source`` holds: a GAN's generator or a detector.

    Raises:
        UserError: see ``export_generator`` / ``export_detector``; ``onnx`` with a GAN.
    """
    out = Path(out)
    check_export_out(out)  # before reading any checkpoint
    if source_kind(source) == "detector":
        return export_detector(source, out, onnx=onnx)
    if onnx:
        raise UserError(f"--onnx exports detectors; {source} holds a GAN generator")
    folder = export_generator(source, out)
    return ExportResult(folder, "generator", str(read_meta(folder).get("arch")))


__all__ = ["ExportResult", "export_detector", "export_generator", "export_model", "source_kind"]
