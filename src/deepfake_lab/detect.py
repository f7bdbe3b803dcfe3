"""Loading trained detectors and scanning images: ``deepfake-lab detect``.

A detector comes from a run folder (its calibrated ``best.pt``), a detector checkpoint, an
export folder (``model.safetensors`` + ``config.json``), or the name of a detector with
released weights (``meso4``, ``meso4:F2F``, ``mesoinception:DF``; see
``load_published_detector``). Its calibration (temperature and threshold, fitted on the
validation split) travels with it; uncalibrated models (released weights among them) use
T = 1 and a 0.5 threshold, and say so.

Scanning decodes each image, optionally finds, aligns and crops its most confident face with
the same detector and alignment as ``data prepare`` (``faces=True``), re-encodes it as in
training, scores it, and optionally writes a Grad-CAM overlay (``explain_dir``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_lab.data.decode import DecodeError, decode_image, list_image_paths
from deepfake_lab.devices import resolve_device
from deepfake_lab.errors import UserError
from deepfake_lab.faces.align import align_face, center_crop
from deepfake_lab.faces.detectors import Face, FaceDetector
from deepfake_lab.io import atomic_write_json, atomic_write_text, write_png
from deepfake_lab.models.detectors.loading import (
    DEFAULT_DETECTOR,
    LoadedDetector,
    fusion_verdicts,
    is_detector_source,
    load_detector,
)
from deepfake_lab.provenance.watermark import extract as extract_watermark

#: Labels of scan records.
LABELS = ("fake", "real", "uncertain", "no_face", "error")


def scan_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts over scan records (images or videos), for the summary line and reports.

    Returns:
        ``total``; ``labels``: records per label of :data:`LABELS`; ``watermarked``: records
        that carry this tool's watermark; for videos, ``no_frame_in_range`` (errors because
        the asked time range held no frame; the rest of ``labels["error"]`` is unreadable)
        and ``cut_short`` (scored, but only up to damage in the file).
    """
    labels = {k: sum(r.get("label") == k for r in records) for k in LABELS}
    empty = sum(
        r.get("label") == "error" and "no frame between" in str(r.get("error") or "")
        for r in records
    )
    return {
        "total": len(records),
        "labels": labels,
        "unreadable": labels["error"] - empty,
        "no_frame_in_range": empty,
        "cut_short": sum(r.get("label") != "error" and bool(r.get("error")) for r in records),
        "watermarked": sum(bool(r.get("watermark")) for r in records),
    }


def split_model_argument(args: list[str]) -> tuple[str, list[str], bool]:
    """``[MODEL] PATH...`` -> ``(model, paths, defaulted)``: the first argument is the
    model when it names one (:func:`is_detector_source`), else :data:`DEFAULT_DETECTOR`
    answers and every argument is a path.

    Raises:
        UserError: nothing to scan.
    """
    if args and is_detector_source(args[0]):
        if len(args) == 1:
            raise UserError(f"no images or videos to scan: give paths after the model {args[0]}")
        return args[0], list(args[1:]), False
    if not args:
        raise UserError("give images, videos or folders to scan (and optionally a model first)")
    return DEFAULT_DETECTOR, list(args), True


class _NoFace(Exception):
    """The face detector found no usable face."""


def _model_input(
    pixels: np.ndarray, size: int, finder: FaceDetector | None
) -> tuple[np.ndarray, Face | None]:
    """``(size, size, 3)`` uint8 RGB as the detector sees it (before re-encoding), and the face.

    Without ``finder``: the centre crop of training (``load_rgb``). With it: the most
    confident face, aligned as ``data prepare`` aligns it.

    Raises:
        _NoFace: no face, or degenerate landmarks.
    """
    if finder is None:
        return center_crop(pixels, size)[0], None
    found = finder.detect(pixels)  # most confident first
    if not found:
        raise _NoFace("the face detector found no face")
    try:
        return align_face(pixels, found[0].landmarks, size)[0], found[0]
    except ValueError as exc:  # degenerate landmarks
        raise _NoFace(str(exc)) from None


def detect_images(
    model: str | Path,
    paths: list[str | Path],
    json_path: str | Path | None = None,
    csv_path: str | Path | None = None,
    batch: int = 64,
    device: str = "auto",
    *,
    faces: bool = False,
    face_detector: str = "yunet",
    face_model: str | Path | None = None,
    explain_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Score images with a detector; one record per file.

    Args:
        model: detector run folder, checkpoint or export folder.
        paths: image files and folders (walked recursively).
        json_path, csv_path: where to write the records (optional).
        batch: images per forward pass.
        device: ``auto``, ``cpu`` or ``cuda``.
        faces: score the most confident face, detected and aligned as ``data prepare`` does,
            instead of the centre crop.
        face_detector: ``yunet`` or ``haar`` (``FACE_DETECTORS``).
        face_model: YuNet's ONNX file (default: the cache, downloaded when missing).
        explain_dir: write one Grad-CAM overlay PNG per scored image here (files already
            under it are not scanned).

    Returns:
        Records sorted by path, with ``path``, ``probability`` (calibrated P(fake), None
        unless scored), ``label`` ("fake" | "real" | "uncertain" | "no_face" | "error";
        "uncertain" only from a fusion, with ``reason`` and per-member ``members``
        scores and its ``ood`` score), ``threshold``,
        ``model`` (a short id), ``error`` for files that could not be read (reported, never
        fatal), ``watermark`` (this tool's invisible mark read from the file: the
        strongest evidence that it was generated here; None for unreadable files),
        ``watermark_fingerprint`` (the generator fingerprint it carries); with ``faces``
        also ``face_box`` ``[x, y, w, h]`` in source pixels and ``face_score``; with
        ``explain_dir`` also ``explain`` (the overlay path, or None).

    Raises:
        UserError: missing paths, no images, a bad detector or face model, or ``explain_dir``
            with a detector that has no spatial layer (before anything is scanned).
    """
    from deepfake_lab.explain import gradcam_layer_of, gradcam_with_logits, overlay_for_viewing
    from deepfake_lab.explain import overlay_names as make_names
    from deepfake_lab.faces.detectors import build_face_detector

    if batch < 1:
        raise UserError(f"--batch must be 1 or more, got {batch}")
    files = list_image_paths(paths)
    explain = Path(explain_dir) if explain_dir is not None else None
    if explain is not None:
        root = explain.resolve()
        files = [f for f in files if root not in f.resolve().parents]
        if not files:
            raise UserError(f"no images found outside the --explain folder {explain}")
        if explain.exists() and not explain.is_dir():
            raise UserError(f"--explain {explain} is a file; give a folder")
    dev = resolve_device(device)
    det = load_detector(model, dev)
    if explain is not None:
        gradcam_layer_of(det.model)  # no spatial layer: say so before scanning anything
    finder = build_face_detector(face_detector, face_model) if faces else None
    names = dict(zip(files, make_names(files), strict=True)) if explain is not None else {}
    model_id = det.model_id

    def record(f: Path, label: str, **extra: Any) -> dict[str, Any]:
        r: dict[str, Any] = {
            "path": str(f),
            "probability": None,
            "label": label,
            "threshold": det.threshold,
            "model": model_id,
            "watermark": None,
            "watermark_fingerprint": None,
        }
        if faces:
            r |= {"face_box": None, "face_score": None}
        if explain is not None:
            r["explain"] = None
        return r | extra

    records: list[dict[str, Any]] = []
    marks: dict[Path, dict[str, Any]] = {}
    for start in range(0, len(files), batch):
        ok: list[tuple[Path, np.ndarray, Face | None]] = []
        for f in files[start : start + batch]:
            try:
                pixels = decode_image(f).pixels
            except DecodeError as exc:
                records.append(record(f, "error", error=str(exc)))
                continue
            # The direct read only (~1 ms): untouched, re-encoded, resized or re-toned files.
            # `verify` also searches crops.
            mark = extract_watermark(pixels, search=False)
            marks[f] = {
                "watermark": mark.found,
                "watermark_fingerprint": mark.payload.fingerprint if mark.payload else None,
            }
            try:
                img, face = _model_input(pixels, det.size, finder)
                ok.append((f, det.prepare(img), face))
            except _NoFace:
                records.append(record(f, "no_face", **marks[f]))
        if not ok:
            continue
        images = np.stack([img for _, img, _ in ok])
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(dev)
        if explain is not None:
            heat = gradcam_with_logits(det.model, x)[0].cpu().numpy()
        logits_t = det.logits(x)  # the calibrated path, also when explaining
        logits = logits_t.cpu().numpy()
        probs = det.probabilities_from_logits(logits)
        verdicts = fusion_verdicts(det, x, logits_t)
        for i, ((f, img, face), z, p) in enumerate(zip(ok, logits, probs, strict=True)):
            extra: dict[str, Any] = {"probability": float(p), **marks[f]}
            label = "fake" if z >= det.logit_threshold else "real"
            if verdicts is not None:
                label, more = verdicts[i]
                extra |= more
            if face is not None:
                extra["face_box"] = [round(float(v), 1) for v in face.box]
                extra["face_score"] = round(float(face.score), 4)
            if explain is not None:
                extra["explain"] = str(
                    write_png(explain / names[f], overlay_for_viewing(img, heat[i]))
                )
            records.append(record(f, label, **extra))
    records.sort(key=lambda r: r["path"])
    _write_outputs(records, det, json_path, csv_path, faces, explain, face_detector, finder)
    return records


def _write_outputs(
    records: list[dict[str, Any]],
    det: LoadedDetector,
    json_path: str | Path | None,
    csv_path: str | Path | None,
    faces: bool,
    explain: Path | None,
    face_detector: str,
    finder: FaceDetector | None,
) -> None:
    counts = {label: sum(r["label"] == label for r in records) for label in LABELS}
    if json_path:
        face_info = None
        if faces:
            face_model = getattr(finder, "model_path", None)
            face_info = {"detector": face_detector, "model": face_model and str(face_model)}
        atomic_write_json(
            Path(json_path),
            {
                "model": det.identity,
                "calibrated": det.calibrated,
                "faces": face_info,
                "explain_dir": None if explain is None else str(explain),
                "counts": counts,
                "results": records,
            },
        )
    if csv_path:
        fields = ["path", "probability", "label", "threshold", "model", "watermark"]
        fields += ["watermark_fingerprint", "error"]
        fields += ["face_box", "face_score"] if faces else []
        fields += ["explain"] if explain is not None else []
        fields += ["reason", "ood"] if any("reason" in r for r in records) else []
        buf = io.StringIO()
        w = csv.DictWriter(buf, fields, extrasaction="ignore")  # "members" is JSON-only
        w.writeheader()
        for r in records:
            row = dict(r)
            if row.get("face_box") is not None:
                row["face_box"] = " ".join(f"{v:g}" for v in row["face_box"])
            w.writerow(row)
        atomic_write_text(Path(csv_path), buf.getvalue())
