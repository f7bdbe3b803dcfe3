"""``prepare_dataset``: a folder of photos and videos in, a folder of aligned face crops out.

For each source image, in sorted order: read it (skipping it when an earlier run already
kept or rejected it), decode it safely, detect faces, keep the most confident face of at
least ``min_face`` px, align it onto the FFHQ-like template, write the PNG atomically, then
append its manifest line. Videos, listed in the same order, go to
:mod:`deepfake_lab.data.prepare_video`: evenly spaced frames, every face of each, linked
into tracks. Anything unusable is recorded in ``rejected.jsonl`` with a reason code and a
detail, and the run carries on. See :mod:`deepfake_lab.data.manifest` for the output folder,
its fields and its crash safety.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deepfake_lab.data import manifest as mf
from deepfake_lab.data.decode import DEFAULT_MAX_PIXELS, DecodeError, decode_bytes
from deepfake_lab.data.layouts import SourceImage, SourceVideo, detect_layout, list_sources
from deepfake_lab.data.prepare_run import ImageSource, PrepareRun, Reject, out_of_memory_reject
from deepfake_lab.data.prepare_summary import DEFAULT_FRAMES_PER_VIDEO, PrepareSummary
from deepfake_lab.data.prepare_video import (
    VideoOptions,
    settle_video,
    video_options_key,
)
from deepfake_lab.errors import UserError, os_error_detail
from deepfake_lab.faces.align import align_face, center_crop
from deepfake_lab.faces.detectors import FaceDetector, build_face_detector
from deepfake_lab.faces.montage import make_montage
from deepfake_lab.io import atomic_write_json, write_png

MONTAGE_FACES = 64


def prepare_dataset(
    src: Path | str,
    out: Path | str,
    size: int = 128,
    detector: str = "yunet",
    face_model: Path | str | None = None,
    min_face: int = 32,
    align: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    limit: int | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    frames_per_video: int = DEFAULT_FRAMES_PER_VIDEO,
) -> PrepareSummary:
    """Turn the images and videos under ``src`` into aligned ``size`` px face crops in ``out``.

    Args:
        src: folder of images and videos (CelebA, FFHQ, FaceForensics++, VoxCeleb or any
            tree of JPEG/PNG/WebP/BMP and MP4/MOV/AVI/MPG/WebM/MKV files).
        out: dataset folder to create or add to (incremental: kept sources are skipped).
        size: side of the square output crops, 16 to 4096.
        detector: a name in ``FACE_DETECTORS`` (``"yunet"``, ``"haar"``).
        face_model: model file for detectors that take one (YuNet).
        min_face: smallest accepted face box side, in source pixels.
        align: False: centre crop + resize, no detector (for pre-aligned sets).
        max_pixels: larger images (width x height) are rejected before decoding, videos with
            larger frames at their first frame.
        limit: only the first ``limit`` sources (in sorted order).
        progress: show a progress bar on stderr.
        log: called with one-line messages (the detected layout).
        frames_per_video: frames sampled per video, evenly spaced; every face of at least
            ``min_face`` px in each is kept, with its track id.

    Returns:
        The run's :class:`PrepareSummary`.

    Raises:
        UserError: bad arguments, no images or videos in ``src``, a detector that cannot be
            loaded, or every source rejected.
    """
    started = time.perf_counter()
    _check_args(size, min_face, max_pixels, limit)
    if frames_per_video < 1:
        raise UserError(f"--frames-per-video must be 1 or more, got {frames_per_video}")
    layout = detect_layout(Path(src))
    out = Path(out).expanduser().resolve()
    if out == layout.root:
        raise UserError("the output folder must differ from the source folder")
    if log:
        log(f"layout: {layout.describe()}")
    images, videos, ignored = list_sources(layout, exclude=out)
    # One order for both kinds, so that --limit and the progress follow the folder's order.
    sources: list[SourceImage | SourceVideo] = sorted([*images, *videos], key=lambda s: s.rel)
    if limit is not None:
        sources = sources[:limit]
    if not sources:
        raise UserError(
            f"no JPEG, PNG, WebP or BMP images or MP4, MOV, AVI, MPG, WebM or MKV videos "
            f"found under {layout.image_root}"
        )
    n_videos = sum(isinstance(source, SourceVideo) for source in sources)

    face_detector = build_face_detector(detector, face_model) if align else None
    options = json.dumps(
        {
            "detector": detector if align else None,
            "face_model": str(face_model or ""),
            "min_face": min_face,
            "max_pixels": max_pixels,
            "align": align,
        },
        sort_keys=True,
    )
    summary = PrepareSummary(
        str(layout.root),
        str(out),
        layout.describe(),
        detector if align else None,
        size,
        align,
        found=len(sources),
        ignored_files=ignored,
        frames_per_video=frames_per_video,
        videos_found=n_videos,
    )
    if out.exists() and not out.is_dir():
        raise UserError(f"the output {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with mf.output_lock(out):
            records, recovery = mf.recover(out)
            mf.check_compatible(records, size, align, out)
            summary.removed_temp_files = recovery.removed_temp_files
            summary.dropped_records = recovery.dropped_records
            with mf.rejection_log(out) as rejections:
                run = PrepareRun(out, options, records, rejections, summary, max_pixels)
                video_opts = VideoOptions(
                    size,
                    face_detector,
                    min_face,
                    max_pixels,
                    frames_per_video,
                    video_options_key(options, frames_per_video),
                )
                for source in _progress(sources, progress):
                    if isinstance(source, SourceVideo):
                        settle_video(run, source, video_opts)
                    else:
                        settle_image(run, source, size, face_detector, min_face)
            summary.rejected = dict(sorted(run.reasons.items()))
            summary.total_kept = len(records)
            summary.elapsed_s = round(time.perf_counter() - started, 3)
            summary.images_per_s = round(len(sources) / max(summary.elapsed_s, 1e-9), 2)
            summary.video_seconds = round(summary.video_seconds, 3)
            if summary.videos_processed:
                per_video = summary.video_seconds / summary.videos_processed
                summary.seconds_per_video = round(per_video, 3)
            atomic_write_json(out / mf.SUMMARY, summary.to_dict())
            _write_montage(out, records)
    except OSError as exc:  # disk full, read-only or unwritable output folder, ...
        raise UserError(f"cannot write the dataset in {out}: {os_error_detail(exc)}") from None

    if summary.kept == 0 and summary.skipped_done == 0:
        counts = ", ".join(f"{k}: {v}" for k, v in summary.rejected.items())
        what = "files" if n_videos else "images"
        raise UserError(
            f"all {len(sources)} {what} were rejected ({counts}); see {out / mf.REJECTED}"
        )
    return summary


def settle_image(
    run: PrepareRun, image: SourceImage, size: int, detector: FaceDetector | None, min_face: int
) -> None:
    """Keep, skip or reject ``image``; its outcome is on disk when this returns."""
    source = run.classify(image)
    if source is not None:
        try:
            record = _process(source, image, run.out, size, detector, min_face, run.max_pixels)
        except DecodeError as exc:
            run.reject(image, source.stat, source.sha, Reject(exc.reason, exc.detail))
        except Reject as exc:
            run.reject(image, source.stat, source.sha, exc)
        except MemoryError:  # in detection or alignment: the machine's state, not the file's
            run.reject(image, source.stat, source.sha, out_of_memory_reject("processing"))
        else:
            mf.append_record(run.out, record)  # only now that its PNG is in place
            run.records.append(record)
            run.summary.kept += 1
    run.rejections.settle(str(image.path))


def _process(
    source: ImageSource,
    image: SourceImage,
    out: Path,
    size: int,
    detector: FaceDetector | None,
    min_face: int,
    max_pixels: int,
) -> dict[str, Any]:
    """Decode, detect, align and write one image; returns its manifest record."""
    decoded = decode_bytes(source.data, max_pixels=max_pixels)
    pixels = decoded.pixels
    face = None
    if detector is None:
        crop, transform = center_crop(pixels, size)
    else:
        faces = detector.detect(pixels)
        if not faces:
            raise Reject("no_face", "the detector found no face")
        large = [f for f in faces if f.min_side >= min_face]
        if not large:
            biggest = max(f.min_side for f in faces)
            raise Reject(
                "face_too_small", f"largest face is {biggest:.0f} px, under --min-face {min_face}"
            )
        face = large[0]  # faces come most confident first
        try:
            crop, transform = align_face(pixels, face.landmarks, size)
        except ValueError as exc:
            raise Reject("bad_landmarks", str(exc)) from None

    output = mf.output_name(source.sha)
    write_png(out / output, crop)
    height, width = pixels.shape[:2]
    return {
        "output": output,
        "source": str(image.path),
        "sha256": source.sha,
        "size": size,
        "aligned": detector is not None,
        "split": image.split,
        "detector": getattr(detector, "registry_name", None),
        "score": None if face is None else round(face.score, 4),
        "box": None if face is None else [round(v, 2) for v in face.box],
        "landmarks": None if face is None else np.round(face.landmarks, 2).tolist(),
        "landmarks_estimated": None if face is None else face.landmarks_estimated,
        "transform": np.round(transform, 6).tolist(),
        "source_width": width,
        "source_height": height,
        "source_bytes": source.stat[0],
        "source_mtime_ns": source.stat[1],
        **image.labels.fields(),
        **dict.fromkeys(mf.VIDEO_FIELDS),
    }


def _check_args(size: int, min_face: int, max_pixels: int, limit: int | None) -> None:
    if not 16 <= size <= 4096:
        raise UserError(f"--size must be between 16 and 4096, got {size}")
    if min_face < 0:
        raise UserError(f"--min-face must be 0 or more, got {min_face}")
    if max_pixels < 1:
        raise UserError(f"--max-pixels must be positive, got {max_pixels}")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be 1 or more, got {limit}")


def _progress(
    sources: list[SourceImage | SourceVideo], show: bool
) -> Iterator[SourceImage | SourceVideo]:
    if not show:
        yield from sources
        return
    from rich.console import Console
    from rich.progress import track

    console = Console(stderr=True)
    yield from track(sources, description="preparing", console=console, transient=False)


def _write_montage(out: Path, records: list[dict[str, Any]]) -> None:
    crops = []
    for record in records[:MONTAGE_FACES]:
        crop = cv2.imread(str(out / record["output"]), cv2.IMREAD_COLOR)
        if crop is not None:
            crops.append(crop[:, :, ::-1])
    if not crops:
        return
    write_png(out / mf.MONTAGE, make_montage(crops, cell=min(128, crops[0].shape[0])))
