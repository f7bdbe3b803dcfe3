"""One image file made ready for a detector: read, hashed, decoded, its watermark read, and
cropped (the centre crop of training, or aligned faces) as the detector was trained to see
it. The CPU half of ``detect``'s image scan, run in its decoding threads; the scoring is
``deepfake_lab.detect``'s.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_lab.data.decode import DecodeError, decode_bytes, read_image_file
from deepfake_lab.faces.align import align_face, center_crop
from deepfake_lab.faces.detectors import Face, FaceDetector
from deepfake_lab.models.detectors.loading import LoadedDetector
from deepfake_lab.provenance.watermark import extract as extract_watermark

#: Called with a file and the sha256 of its bytes before it is decoded: a record to use
#: instead of scoring it (a resumed scan), or None.
Reuse = Callable[[Path, str], "dict[str, Any] | None"]


class NoFace(Exception):
    """The face detector found no usable face."""


def model_inputs(
    pixels: np.ndarray, size: int, finder: FaceDetector | None, all_faces: bool = False
) -> list[tuple[np.ndarray, Face | None]]:
    """``(size, size, 3)`` uint8 RGB crops as the detector sees them (before re-encoding),
    each with its face.

    Without ``finder``: the centre crop of training (``load_rgb``). With it: the most
    confident face (``all_faces``: every face, most confident first), aligned as ``data
    prepare`` aligns it; faces whose landmarks are degenerate are left out.

    Raises:
        NoFace: no face, or none with usable landmarks.
    """
    if finder is None:
        return [(center_crop(pixels, size)[0], None)]
    found = finder.detect(pixels)  # most confident first
    if not found:
        raise NoFace("the face detector found no face")
    crops, why = [], ""
    for face in found if all_faces else found[:1]:
        try:
            crops.append((align_face(pixels, face.landmarks, size)[0], face))
        except ValueError as exc:  # degenerate landmarks
            why = str(exc)
    if not crops:
        raise NoFace(why)
    return crops


@dataclass
class Prepared:
    """One file made ready to score: its crops (each ``(path, face index, pixels as
    ``det.prepare`` leaves them, face)``) and ``marks`` (sha256, watermark) to add to its
    record; or, when there is nothing to score, its ``record``."""

    path: Path
    record: dict[str, Any] | None = None
    crops: list[tuple[Path, int, np.ndarray, Face | None]] = field(default_factory=list)
    marks: dict[str, Any] = field(default_factory=dict)


def prepare_file(
    det: LoadedDetector,
    find: Callable[[], FaceDetector | None],
    all_faces: bool,
    reuse: Reuse | None,
    face_lock: contextlib.AbstractContextManager[Any],
    f: Path,
) -> Prepared:
    """Read, hash, decode, read the watermark of and crop one file; a file that fails
    costs that file only (a record labelled "error", or "no_face").

    Args:
        det: the detector (its input size and ``prepare``).
        find: the face detector for the calling thread (None: the centre crop).
        all_faces: every face, not only the most confident.
        reuse: see :data:`Reuse`.
        face_lock: held around face detection (a face detector shared by threads).
        f: the file.
    """
    try:
        data = read_image_file(f)
    except DecodeError as exc:  # nothing read: nothing to key a resumed scan on
        return Prepared(f, {"path": str(f), "label": "error", "error": str(exc)})
    sha = hashlib.sha256(data).hexdigest()
    if reuse is not None and (old := reuse(f, sha)) is not None:
        return Prepared(f, old)
    marks: dict[str, Any] = {"sha256": sha}
    try:
        pixels = decode_bytes(data).pixels
        del data
        # The direct read only (~1 ms): untouched, re-encoded, resized or re-toned
        # files. `verify` also searches crops.
        mark = extract_watermark(pixels, search=False)
        marks["watermark"] = mark.found
        marks["watermark_fingerprint"] = mark.payload.fingerprint if mark.payload else None
        with face_lock:
            found = model_inputs(pixels, det.size, find(), all_faces)
        crops = [(f, k, det.prepare(img), face) for k, (img, face) in enumerate(found)]
        return Prepared(f, crops=crops, marks=marks)
    except DecodeError as exc:
        return Prepared(f, {"path": str(f), "label": "error", "error": str(exc), **marks})
    except NoFace:
        return Prepared(f, {"path": str(f), "label": "no_face", **marks})
    except Exception as exc:  # noqa: BLE001 - one file's failure costs that file only
        why = f"could not be scanned ({type(exc).__name__}: {exc})"
        return Prepared(f, {"path": str(f), "label": "error", "error": why, **marks})
