"""``deepfake-lab verify``: read the provenance of images and videos.

One record per image with the keys ``path``, ``watermark`` (bool), ``payload`` (the decoded
payload or None), ``bit_errors`` (corrected bits, against ``budget``), ``metadata`` (PNG
text / XMP, ``read_metadata``), ``c2pa`` (``read_c2pa``, None without a manifest) and a
one-phrase ``verdict``. Videos (``decode.VIDEO_SUFFIXES``) get a record from
``verify_video.verify_video`` (``kind: "video"``): the same keys, plus the frame counts
behind the watermark decision. Unreadable files are reported in the record (``error``),
never fatal; entries that hold no file (a named pipe, a link that loops or leads nowhere:
``data.decode.not_a_file``) get the verdict "skipped", with the reason in ``error``. The
JSON file writes file names as ``safe_text.for_record`` does (undecodable bytes as
``\\xNN``).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from deepfake_lab import __version__
from deepfake_lab.data.decode import DecodeError, decode_image, list_image_paths, not_a_file
from deepfake_lab.errors import UserError
from deepfake_lab.io import atomic_write_json
from deepfake_lab.provenance.metadata import read_metadata
from deepfake_lab.provenance.verify_video import DEFAULT_MAX_FRAMES, verify_video
from deepfake_lab.provenance.watermark import BCH_T, code_matches, extract
from deepfake_lab.safe_text import for_records
from deepfake_lab.video.detect_video import split_media


def list_media_paths(paths: list[str | Path]) -> tuple[list[Path], list[Path]]:
    """``(images, videos)`` among ``paths``, as ``detect`` splits them (``split_media``,
    then ``list_image_paths``): folders walked (sorted), files as given.

    Raises:
        UserError: a path that does not exist, or nothing found.
    """
    image_args, videos = split_media([Path(p) for p in paths])
    images = list_image_paths(image_args) if image_args else []
    if not images and not videos:
        raise UserError("no images or videos found in the given paths")
    return images, videos


def _c2pa_reader() -> Any:
    """``read_c2pa``, or None when c2pa-python is not installed (reported per record)."""
    try:
        import c2pa  # noqa: F401
    except ImportError:
        return None
    from deepfake_lab.provenance.c2pa import read_c2pa

    return read_c2pa


def _verdict(r: dict[str, Any]) -> str:
    c2pa = r.get("c2pa") or {}
    if r["watermark"]:
        return "deepfake-lab watermark"
    if c2pa.get("valid") and c2pa.get("ai_generated"):
        return "AI-generated (signed C2PA)"
    if (r.get("metadata") or {}).get("ai_generated"):
        return "AI tag only (metadata, not proof)"
    return "none found"


def verify_images(
    paths: list[str | Path],
    json_path: str | Path | None = None,
    secret_file: str | Path | None = None,
    trust_anchors: str | Path | None = None,
    search: bool = True,
    max_frames: int = DEFAULT_MAX_FRAMES,
) -> list[dict[str, Any]]:
    """Read watermark, metadata and C2PA manifest of every image, and watermark and container
    tags of every video.

    Args:
        paths: image and video files and folders (walked recursively).
        json_path: write ``{"tool", "version", "created", "results": [...], "videos": [...]}``
            here (``results``: the image records).
        secret_file: the owner's secret: each keyed payload gets ``code_valid``.
        trust_anchors: PEM root certificates trusted for C2PA signers.
        search: images: search crop alignments when the direct read fails (~0.3 s per such
            image). Video frames are read directly only (``verify_video``).
        max_frames: videos: frames checked per video, evenly spaced.

    Returns:
        The image records sorted by path, then the video records sorted by path (see the
        module docstring).

    Raises:
        UserError: missing paths or secret file, nothing to verify, ``max_frames`` < 1.
    """
    if max_frames < 1:
        raise UserError(f"--max-frames must be 1 or more, got {max_frames}")
    files, videos = list_media_paths(paths)
    secret = None
    if secret_file is not None:
        if not Path(secret_file).is_file():
            raise UserError(f"secret file not found: {secret_file}")
        secret = Path(secret_file).read_bytes()
    if trust_anchors is not None and not Path(trust_anchors).is_file():
        raise UserError(f"trust anchors file not found: {trust_anchors}")
    reader = _c2pa_reader()
    records = []
    for f in files:
        r: dict[str, Any] = {
            "path": str(f),
            "watermark": False,
            "payload": None,
            "bit_errors": None,
            "budget": BCH_T,
        }
        why = not_a_file(f)
        if why is not None:
            r |= {"error": why, "metadata": None, "c2pa": None, "verdict": "skipped"}
            records.append(r)
            continue
        try:
            pixels = decode_image(f).pixels
        except DecodeError as exc:
            r |= {"error": str(exc), "metadata": None, "c2pa": None, "verdict": "unreadable"}
            records.append(r)
            continue
        reading = extract(pixels, search=search)
        r["watermark"] = reading.found
        r["bit_errors"] = reading.bit_errors
        r["aligned"] = reading.aligned
        r["false_positive_bound"] = reading.to_dict()["false_positive_bound"]
        if reading.payload is not None:
            r["payload"] = reading.payload.to_dict()
            if secret is not None:
                r["payload"]["code_valid"] = code_matches(reading.payload, secret)
        r["metadata"] = read_metadata(f)
        if reader is None:
            r["c2pa"] = {"error": "c2pa-python not installed: pip install 'deepfake-lab[c2pa]'"}
        else:
            r["c2pa"] = reader(f, Path(trust_anchors) if trust_anchors else None)
        r["verdict"] = _verdict(r)
        records.append(r)
    records.sort(key=lambda r: r["path"])
    video_records = []
    for v in sorted(videos):
        r = verify_video(v, secret, max_frames)  # an entry that holds no file: error at once
        if not_a_file(v) is not None:
            r["verdict"] = "skipped"
        video_records.append(r)
    if json_path is not None:
        doc = {
            "tool": "deepfake-lab",
            "version": __version__,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "results": records,
            "videos": video_records,
        }
        atomic_write_json(Path(json_path), for_records(doc))
    return records + video_records
