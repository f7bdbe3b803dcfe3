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

import contextlib
import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_lab.data.decode import DecodeError, decode_image, list_image_paths, not_a_file
from deepfake_lab.devices import resolve_device
from deepfake_lab.errors import UserError, os_error_detail
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
from deepfake_lab.safe_text import for_records

#: Labels of scan records ("skipped": an entry that holds no file, such as a named pipe or a
#: link that loops; its ``error`` says which).
LABELS = ("fake", "real", "uncertain", "no_face", "error", "skipped")


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
        "cut_short": sum(
            r.get("label") not in ("error", "skipped") and bool(r.get("error")) for r in records
        ),
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


def _model_inputs(
    pixels: np.ndarray, size: int, finder: FaceDetector | None, all_faces: bool = False
) -> list[tuple[np.ndarray, Face | None]]:
    """``(size, size, 3)`` uint8 RGB crops as the detector sees them (before re-encoding),
    each with its face.

    Without ``finder``: the centre crop of training (``load_rgb``). With it: the most
    confident face (``all_faces``: every face, most confident first), aligned as ``data
    prepare`` aligns it; faces whose landmarks are degenerate are left out.

    Raises:
        _NoFace: no face, or none with usable landmarks.
    """
    if finder is None:
        return [(center_crop(pixels, size)[0], None)]
    found = finder.detect(pixels)  # most confident first
    if not found:
        raise _NoFace("the face detector found no face")
    crops, why = [], ""
    for face in found if all_faces else found[:1]:
        try:
            crops.append((align_face(pixels, face.landmarks, size)[0], face))
        except ValueError as exc:  # degenerate landmarks
            why = str(exc)
    if not crops:
        raise _NoFace(why)
    return crops


def base_record(
    det: LoadedDetector, path: Path | str, label: str, faces: bool = False, explain: bool = False
) -> dict[str, Any]:
    """The keys every image record has, unscored: what :func:`iter_image_records` adds to."""
    r: dict[str, Any] = {
        "path": str(path),
        "probability": None,
        "label": label,
        "threshold": det.threshold,
        "model": det.model_id,
        "watermark": None,
        "watermark_fingerprint": None,
    }
    if faces:
        r |= {"face_box": None, "face_score": None}
    if explain:
        r["explain"] = None
    return r


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
    all_faces: bool = False,
) -> list[dict[str, Any]]:
    """Score images with a detector; one record per file.

    Args:
        model: detector run folder, checkpoint or export folder.
        paths: image files and folders (walked recursively).
        json_path, csv_path: where to write the records (optional); when Ctrl-C or an
            error stops the scan, the records so far are written before it goes on (the
            JSON's ``interrupted`` says why).
        batch: images per forward pass.
        device: ``auto``, ``cpu`` or ``cuda``.
        faces: score the most confident face, detected and aligned as ``data prepare`` does,
            instead of the centre crop.
        face_detector: ``yunet`` or ``haar`` (``FACE_DETECTORS``).
        face_model: YuNet's ONNX file (default: the cache, downloaded when missing).
        explain_dir: write one Grad-CAM overlay PNG per scored image here (files already
            under it are not scanned).
        all_faces: with ``faces``, score every face found: the record answers with its most
            suspicious face and lists each in ``faces`` (see :func:`iter_image_records`).

    Returns:
        Records sorted by path, with ``path``, ``probability`` (calibrated P(fake), None
        unless scored), ``label`` (:data:`LABELS`: "fake" | "real" | "uncertain" | "no_face" |
        "error" | "skipped";
        "uncertain" only from a fusion, with ``reason`` and per-member ``members``
        scores and its ``ood`` score), ``threshold``,
        ``model`` (a short id), ``error`` for files that could not be read (reported, never
        fatal; label "error") and for entries that hold no file (label "skipped": named
        pipes, links that loop or lead nowhere), ``watermark`` (this tool's invisible mark
        read from the file: the strongest evidence that it was generated here; None for
        unreadable files),
        ``watermark_fingerprint`` (the generator fingerprint it carries); with ``faces``
        also ``face_box`` ``[x, y, w, h]`` in source pixels and ``face_score``; with
        ``explain_dir`` also ``explain`` (the overlay path, or None), and ``not_written``
        (``{"Grad-CAM overlay": why}``) when that file could not be written.
        ``json_path`` and ``csv_path`` hold the same records with file names as
        ``safe_text.for_record`` writes them (undecodable bytes as ``\\xNN``).

    Raises:
        UserError: missing paths, no images, a bad detector or face model, or ``explain_dir``
            with a detector that has no spatial layer (before anything is scanned).
    """
    from deepfake_lab.explain import gradcam_layer_of
    from deepfake_lab.explain import overlay_names as make_names
    from deepfake_lab.faces.detectors import build_face_detector

    if batch < 1:
        raise UserError(f"--batch must be 1 or more, got {batch}")
    if all_faces and not faces:
        raise UserError("--all-faces needs --faces (faces are found, then each is scored)")
    files = list_image_paths(paths)
    skipped = {f: why for f in files if (why := not_a_file(f)) is not None}
    files = [f for f in files if f not in skipped]
    explain = Path(explain_dir) if explain_dir is not None else None
    if explain is not None:
        root = explain.resolve()
        files = [f for f in files if root not in f.resolve().parents]
        if not files and not skipped:
            raise UserError(f"no images found outside the --explain folder {explain}")
        if explain.exists() and not explain.is_dir():
            raise UserError(f"--explain {explain} is a file; give a folder")
    dev = resolve_device(device)
    det = load_detector(model, dev)
    if explain is not None:
        gradcam_layer_of(det.model)  # no spatial layer: say so before scanning anything
    finder = build_face_detector(face_detector, face_model) if faces else None
    names = dict(zip(files, make_names(files), strict=True)) if explain is not None else {}

    def record(f: Path | str, label: str, **extra: Any) -> dict[str, Any]:
        return base_record(det, f, label, faces, explain is not None) | extra

    records = [record(f, "skipped", error=why) for f, why in skipped.items()]
    outputs = (det, json_path, csv_path, faces, explain, face_detector, finder)
    try:
        for r in iter_image_records(det, files, finder, batch, explain, names, all_faces):
            records.append(record(r["path"], r["label"]) | r)
    except BaseException as exc:
        # Ctrl-C or a failure of the whole batch: what was scanned is written before the
        # error goes on, marked as stopped. A failure to write it must not hide the error.
        records.sort(key=lambda r: r["path"])
        how = "by the user" if isinstance(exc, KeyboardInterrupt) else f"by {type(exc).__name__}"
        stopped = f"stopped {how} after {len(records)} of {len(files) + len(skipped)} images"
        with contextlib.suppress(Exception):
            _write_outputs(records, *outputs, stopped=stopped)
        raise
    records.sort(key=lambda r: r["path"])
    _write_outputs(records, *outputs)
    return records


def iter_image_records(
    det: LoadedDetector,
    files: list[Path],
    finder: FaceDetector | None = None,
    batch: int = 64,
    explain_dir: Path | None = None,
    overlay_names: dict[Path, str] | None = None,
    all_faces: bool = False,
) -> Iterator[dict[str, Any]]:
    """Score image files with a loaded detector, yielding each file's record as soon as its
    batch is scored (the scanning core of :func:`detect_images` and of ``serve``).

    Args:
        det: the detector.
        files: image files (entries that hold no file are the caller's to report).
        finder: a face detector: score aligned faces; None: the centre crop.
        batch: crops per forward pass.
        explain_dir: write a Grad-CAM overlay of each scored crop here, named by
            ``overlay_names`` (default ``explain.overlay_names``); other faces than the
            first add ``-face<k>`` to the name.
        all_faces: score every face ``finder`` finds; the record's score, label and
            ``face_box`` are those of its most suspicious face (highest logit), and
            ``faces`` lists each face's ``box``, ``score``, ``probability``, ``label``.

    Yields:
        Records with ``path``, ``label`` and, as scanned, ``probability``, ``watermark``,
        ``watermark_fingerprint``, ``face_box``, ``face_score``, ``faces``, ``explain``,
        ``error``, ``not_written`` and a fusion's ``reason``, ``members``, ``ood``. A file
        that fails costs that file only (label "error").
    """
    from deepfake_lab.explain import overlay_names as make_names

    if explain_dir is not None and overlay_names is None:
        overlay_names = dict(zip(files, make_names(files), strict=True))
    for start in range(0, len(files), batch):
        crops: list[tuple[Path, int, np.ndarray, Face | None]] = []
        marks: dict[Path, dict[str, Any]] = {}
        done: list[dict[str, Any]] = []
        for f in files[start : start + batch]:
            try:
                pixels = decode_image(f).pixels
                # The direct read only (~1 ms): untouched, re-encoded, resized or re-toned
                # files. `verify` also searches crops.
                mark = extract_watermark(pixels, search=False)
                marks[f] = {
                    "watermark": mark.found,
                    "watermark_fingerprint": mark.payload.fingerprint if mark.payload else None,
                }
                for k, (img, face) in enumerate(_model_inputs(pixels, det.size, finder, all_faces)):
                    crops.append((f, k, det.prepare(img), face))
            except DecodeError as exc:
                done.append({"path": str(f), "label": "error", "error": str(exc)})
            except _NoFace:
                done.append({"path": str(f), "label": "no_face", **marks[f]})
            except Exception as exc:  # noqa: BLE001 - one file's failure costs that file only
                why = f"could not be scanned ({type(exc).__name__}: {exc})"
                done.append({"path": str(f), "label": "error", "error": why})
        yield from done
        if crops:
            yield from _score_crops(det, crops, marks, explain_dir, overlay_names or {}, all_faces)


def _score_crops(
    det: LoadedDetector,
    crops: list[tuple[Path, int, np.ndarray, Face | None]],
    marks: dict[Path, dict[str, Any]],
    explain_dir: Path | None,
    names: dict[Path, str],
    all_faces: bool,
) -> Iterator[dict[str, Any]]:
    """One record per file of ``crops`` (its crops scored in one pass)."""
    from deepfake_lab.explain import gradcam_with_logits, overlay_for_viewing

    dev = next(det.model.parameters()).device
    images = np.stack([img for _, _, img, _ in crops])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(dev)
    heat = gradcam_with_logits(det.model, x)[0].cpu().numpy() if explain_dir else None
    logits_t = det.logits(x)  # the calibrated path, also when explaining
    logits = logits_t.cpu().numpy()
    probs = det.probabilities_from_logits(logits)
    verdicts = fusion_verdicts(det, x, logits_t)
    per_file: dict[Path, list[tuple[float, dict[str, Any]]]] = {}
    for i, ((f, k, img, face), z, p) in enumerate(zip(crops, logits, probs, strict=True)):
        one: dict[str, Any] = {"probability": float(p)}
        label = "fake" if z >= det.logit_threshold else "real"
        if verdicts is not None:
            label, more = verdicts[i]
            one |= more
        one["label"] = label
        if face is not None:
            one["face_box"] = [round(float(v), 1) for v in face.box]
            one["face_score"] = round(float(face.score), 4)
        if heat is not None and explain_dir is not None:
            name = names[f] if k == 0 else names[f].replace(".png", f"-face{k}.png")
            try:  # a file that cannot be written costs that overlay, not the scan
                picture = overlay_for_viewing(img, heat[i])
                one["explain"] = str(write_png(explain_dir / name, picture))
            except OSError as exc:
                one["not_written"] = {"Grad-CAM overlay": os_error_detail(exc)}
        per_file.setdefault(f, []).append((float(z), one))
    for f, scored in per_file.items():
        _, top = max(scored, key=lambda t: t[0])  # the most suspicious face answers
        r = {"path": str(f), **marks[f], **top}
        if all_faces:
            r["faces"] = [
                {
                    "box": one.get("face_box"),
                    "score": one.get("face_score"),
                    "probability": one["probability"],
                    "label": one["label"],
                    **({"explain": one["explain"]} if "explain" in one else {}),
                }
                for _, one in scored
            ]
        yield r


def _write_outputs(
    records: list[dict[str, Any]],
    det: LoadedDetector,
    json_path: str | Path | None,
    csv_path: str | Path | None,
    faces: bool,
    explain: Path | None,
    face_detector: str,
    finder: FaceDetector | None,
    stopped: str | None = None,
) -> None:
    """The records to ``json_path`` and ``csv_path``; ``stopped`` (why the scan ended early)
    goes into the JSON as ``interrupted``."""
    counts = {label: sum(r["label"] == label for r in records) for label in LABELS}
    if json_path:
        face_info = None
        if faces:
            face_model = getattr(finder, "model_path", None)
            face_info = {"detector": face_detector, "model": face_model and str(face_model)}
        doc = {
            "model": det.identity,
            "calibrated": det.calibrated,
            "faces": face_info,
            "explain_dir": None if explain is None else str(explain),
            "counts": counts,
            "results": records,
        }
        if stopped is not None:
            doc["interrupted"] = stopped
        atomic_write_json(Path(json_path), for_records(doc))
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
            w.writerow(for_records(row))
        atomic_write_text(Path(csv_path), buf.getvalue())
