"""Loading trained detectors and scanning images: ``deepfake-lab detect``.

A detector comes from a run folder (its calibrated ``best.pt``), a detector checkpoint, an
export folder (``model.safetensors`` + ``config.json``), or the name of a detector with
released weights (``meso4``, ``meso4:F2F``, ``mesoinception:DF``; see
``load_published_detector``). Its calibration (temperature and threshold, fitted on the
validation split) travels with it; uncalibrated models (released weights among them) use
T = 1 and a 0.5 threshold, and say so.

Scanning decodes each image, optionally finds, aligns and crops its most confident face with
the same detector and alignment as ``data prepare`` (``faces=True``), re-encodes it as in
training, scores it, and optionally writes a Grad-CAM overlay (``explain_dir``). Threads
read, hash, decode and crop files ahead of the scoring (``workers``); ``shard`` scans one
shard of the files, and a ``.jsonl`` output is streamed and resumed
(``deepfake_lab.scan_shard``, ``deepfake_lab.scan_output``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_lab.data.decode import list_image_paths, not_a_file
from deepfake_lab.devices import resolve_device
from deepfake_lab.errors import UserError, os_error_detail
from deepfake_lab.faces.detectors import Face, FaceDetector
from deepfake_lab.io import write_png
from deepfake_lab.models.detectors.loading import (
    DEFAULT_DETECTOR,
    LoadedDetector,
    fusion_verdicts,
    is_detector_source,
    load_detector,
)
from deepfake_lab.scan_output import LABELS as LABELS  # re-exported: the labels of records
from deepfake_lab.scan_output import (
    JsonlStream,
    ScanRecords,
    is_jsonl,
    scan_header,
    scan_model_id,
    write_scan_outputs,
)
from deepfake_lab.scan_output import scan_summary as scan_summary  # re-exported
from deepfake_lab.scan_prepare import Reuse, prepare_file
from deepfake_lab.scan_shard import check_workers, ordered_map, parse_shard, per_thread


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
    shard: str | None = None,
    workers: int | None = None,
) -> ScanRecords:
    """Score images with a detector; one record per file.

    Args:
        model: detector run folder, checkpoint or export folder.
        paths: image files and folders (walked recursively).
        json_path, csv_path: where to write the records (optional); when Ctrl-C or an
            error stops the scan, the records so far are written before it goes on (the
            JSON's ``interrupted`` says why). A ``json_path`` ending in ``.jsonl`` gets one
            line per file as soon as it is scored, and a rerun skips the files it already
            holds (same bytes, same ``model_id``; see ``deepfake_lab.scan_output``).
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
        shard: ``"I/N"``: scan only the files of shard I of N (``scan_shard.shard_of``);
            the N shards' outputs merge (``deepfake_lab.merge``) into this scan unsharded.
        workers: threads that read and decode files ahead of the scoring (0: inline; None:
            ``scan_shard.default_workers``); the records are the same either way.

    Returns:
        Records sorted by path (a :class:`~deepfake_lab.scan_output.ScanRecords`: also
        ``listed``, ``shard``, ``resumed``, ``torn_bytes``), with ``path``, ``probability``
        (calibrated P(fake), None unless scored), ``label`` (:data:`LABELS`: "fake" |
        "real" | "uncertain" | "no_face" | "error" | "skipped";
        "uncertain" only from a fusion, with ``reason`` and per-member ``members``
        scores and its ``ood`` score), ``threshold``,
        ``model`` (a short id), ``model_id`` (``scan_output.scan_model_id``: the model and
        the settings that make its answers), ``sha256`` (of the file's bytes; None when
        they could not be read), ``error`` for files that could not be read (reported,
        never fatal; label "error") and for entries that hold no file (label "skipped":
        named pipes, links that loop or lead nowhere), ``watermark`` (this tool's
        invisible mark read from the file: the strongest evidence that it was generated
        here; None for unreadable files),
        ``watermark_fingerprint`` (the generator fingerprint it carries); with ``faces``
        also ``face_box`` ``[x, y, w, h]`` in source pixels and ``face_score``; with
        ``explain_dir`` also ``explain`` (the overlay path, or None), and ``not_written``
        (``{"Grad-CAM overlay": why}``) when that file could not be written.
        ``json_path`` and ``csv_path`` hold the same records with file names as
        ``safe_text.for_record`` writes them (undecodable bytes as ``\\xNN``).

    Raises:
        UserError: missing paths, no images, a bad detector, face model, ``shard`` or
            ``workers``, ``explain_dir`` with a detector that has no spatial layer, or a
            ``.jsonl`` that another scan is writing (before anything is scanned).
    """
    from deepfake_lab.explain import gradcam_layer_of
    from deepfake_lab.explain import overlay_names as make_names
    from deepfake_lab.faces.detectors import build_face_detector

    if batch < 1:
        raise UserError(f"--batch must be 1 or more, got {batch}")
    if all_faces and not faces:
        raise UserError("--all-faces needs --faces (faces are found, then each is scored)")
    part, workers = parse_shard(shard), check_workers(workers)
    listed = list_image_paths(paths)
    files = listed if part is None else [f for f in listed if part.holds(f)]
    skipped = {f: why for f in files if (why := not_a_file(f)) is not None}
    files = [f for f in files if f not in skipped]
    explain = Path(explain_dir) if explain_dir is not None else None
    names: dict[Path, str] = {}
    if explain is not None:
        root = explain.resolve()
        files = [f for f in files if root not in f.resolve().parents]
        if not files and not skipped and part is None:
            raise UserError(f"no images found outside the --explain folder {explain}")
        if explain.exists() and not explain.is_dir():
            raise UserError(f"--explain {explain} is a file; give a folder")
        # Named among every shard's files, so that the shards' overlays never collide.
        every = files if part is None else [f for f in listed if not_a_file(f) is None]
        every = [f for f in every if root not in f.resolve().parents]
        names = dict(zip(every, make_names(every), strict=True))
    out = ScanRecords()
    out.listed, out.shard = len(listed), None if part is None else str(part)
    dev = resolve_device(device)
    det = load_detector(model, dev)
    if explain is not None:
        gradcam_layer_of(det.model)  # no spatial layer: say so before scanning anything
    finder = build_face_detector(face_detector, face_model) if faces else None
    model_id = scan_model_id(det, faces, face_detector, finder, all_faces)
    header = scan_header(det, model_id, faces, face_detector, finder, explain)

    def record(f: Path | str, label: str, **extra: Any) -> dict[str, Any]:
        base = base_record(det, f, label, faces, explain is not None)
        return base | {"model_id": model_id, "sha256": None} | extra

    stream = JsonlStream(json_path, model_id, header) if is_jsonl(json_path) else None
    outputs = (header, None if stream else json_path, csv_path)
    new_finder = partial(build_face_detector, face_detector, face_model) if faces else None
    with stream or contextlib.nullcontext():
        out += [record(f, "skipped", error=why) for f, why in skipped.items()]
        scan = iter_image_records(
            det,
            files,
            finder,
            batch,
            explain,
            names,
            all_faces,
            workers=workers,
            reuse=stream.reuse if stream else None,
            new_finder=new_finder,
        )
        try:
            for r in out:  # the entries without a file
                if stream:
                    stream.write(r)
            for r in scan:
                out.append(record(r["path"], r["label"]) | r)
                if stream:
                    stream.write(out[-1])
        except BaseException as exc:
            # Ctrl-C or a failure of the whole batch: what was scanned is written before the
            # error goes on, marked as stopped. A failure to write it must not hide the error.
            out.sort(key=lambda r: r["path"])
            how = "the user" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
            stopped = f"stopped by {how} after {len(out)} of {len(files) + len(skipped)} images"
            with contextlib.suppress(Exception):
                write_scan_outputs(out, *outputs, stopped=stopped)
            raise
    if stream is not None:
        out.resumed, out.torn_bytes = stream.resumed, stream.torn_bytes
        out.bad_lines = stream.bad_lines
    out.sort(key=lambda r: r["path"])
    write_scan_outputs(out, *outputs)
    return out


def iter_image_records(
    det: LoadedDetector,
    files: list[Path],
    finder: FaceDetector | None = None,
    batch: int = 64,
    explain_dir: Path | None = None,
    overlay_names: dict[Path, str] | None = None,
    all_faces: bool = False,
    *,
    workers: int = 0,
    reuse: Reuse | None = None,
    new_finder: Callable[[], FaceDetector] | None = None,
) -> Iterator[dict[str, Any]]:
    """Score image files with a loaded detector, yielding each file's record as soon as its
    batch is scored (the scanning core of :func:`detect_images` and of ``serve``).

    Args:
        det: the detector.
        files: image files (entries that hold no file are the caller's to report).
        finder: a face detector: score aligned faces; None: the centre crop.
        batch: files per forward pass.
        explain_dir: write a Grad-CAM overlay of each scored crop here, named by
            ``overlay_names`` (default ``explain.overlay_names``); other faces than the
            first add ``-face<k>`` to the name.
        all_faces: score every face ``finder`` finds; the record's score, label and
            ``face_box`` are those of its most suspicious face (highest logit), and
            ``faces`` lists each face's ``box``, ``score``, ``probability``, ``label``.
        workers: threads that read, hash, decode and crop files ahead of the scoring
            (``scan_shard.ordered_map``; 0: inline). Records and their order are the same.
        reuse: asked, in those threads, with each file and the sha256 of its bytes; a
            record it returns is yielded as it is, and the file is not decoded.
        new_finder: builds a face detector for each thread (face detectors keep state per
            call); without it the threads share ``finder``, one call at a time.

    Yields:
        Records with ``path``, ``label``, ``sha256`` and, as scanned, ``probability``,
        ``watermark``, ``watermark_fingerprint``, ``face_box``, ``face_score``, ``faces``,
        ``explain``, ``error``, ``not_written`` and a fusion's ``reason``, ``members``,
        ``ood``. A file that fails costs that file only (label "error").
    """
    from deepfake_lab.explain import overlay_names as make_names

    if explain_dir is not None and overlay_names is None:
        overlay_names = dict(zip(files, make_names(files), strict=True))
    # Face detectors keep state per call: each thread gets its own, or they take turns.
    find = per_thread(finder, new_finder if workers > 0 and finder is not None else None)
    shared = workers > 0 and finder is not None and new_finder is None
    face_lock = threading.Lock() if shared else contextlib.nullcontext()
    prepare = partial(prepare_file, det, find, all_faces, reuse, face_lock)
    # Up to two batches ahead: the threads fill the next batch while this one is scored.
    with contextlib.closing(ordered_map(prepare, files, workers, ahead=2 * batch)) as prepared:
        while chunk := list(islice(prepared, batch)):
            crops = [c for p in chunk for c in p.crops]
            marks = {p.path: p.marks for p in chunk if p.record is None}
            yield from (p.record for p in chunk if p.record is not None)
            if crops:
                names = overlay_names or {}
                yield from _score_crops(det, crops, marks, explain_dir, names, all_faces)


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
