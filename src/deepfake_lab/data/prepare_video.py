"""Videos in ``prepare_dataset``: evenly spaced frames, every face aligned, linked into tracks.

For each video, in the source order of :func:`deepfake_lab.data.prepare.prepare_dataset`:

1. Settle it without decoding when possible: an unchanged file (same path, size and mtime)
   that already has records is done; one rejected before with the same options is rejected
   again from ``rejected.jsonl``. Otherwise its sha256 is computed by streaming the file in
   chunks (videos can be gigabytes: the bytes are never all in memory), and a video whose
   bytes another source already holds is a ``duplicate`` (or, moved or re-timestamped,
   done), exactly as for images.
2. Decode ``frames_per_video`` evenly spaced frames in one streaming pass
   (:func:`deepfake_lab.video.decode.iter_evenly_spaced`), find every face of at least
   ``min_face`` px in each, and align it onto the FFHQ-like template.
3. Link the faces of the sampled frames into tracks
   (:func:`deepfake_lab.video.tracks.link_tracks`) so that each crop carries a ``track_id``.
4. Write one PNG per face per frame, ``images/ab/<sha16>_f<frame>_t<track>.png``, then append
   the video's records in one write (see :mod:`deepfake_lab.data.manifest` for the fields and
   why a video's records go together).

A video that cannot be opened is a rejection (``not_video``, ``truncated``, ``corrupt``,
``empty_file``, ``unreadable``, ``too_large``), one with no face of at least ``min_face`` px
in any sampled frame is ``no_face`` (or ``face_too_small``), never an error that stops the
run. A video whose decoding breaks part-way keeps the faces of the frames decoded before the
break, and its records say why in ``decode_error``. Running out of memory anywhere in a
video is the transient ``out_of_memory`` rejection of the whole video (no part kept), which
the next run tries again.

The crops of one video are held in memory until its tracks are known, because the track id
is part of each crop's name: ``frames_per_video`` x faces x ``size``\\ :sup:`2` x 3 bytes
(32 frames of one face at 128 px: 1.5 MB).

With ``align=False`` no detector runs: each sampled frame gives one centre crop, with
``track_id`` None.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_lab.data import manifest as mf
from deepfake_lab.data.decode import TRANSIENT_REASONS
from deepfake_lab.data.prepare_run import PrepareRun, out_of_memory_reject
from deepfake_lab.data.video_layouts import SourceVideo
from deepfake_lab.errors import UserError, os_error_detail, without_path
from deepfake_lab.faces.align import align_face, center_crop
from deepfake_lab.faces.detectors import Face, FaceDetector
from deepfake_lab.hashing import sha256_file
from deepfake_lab.io import write_png
from deepfake_lab.video.decode import Frame, VideoDecodeError, iter_evenly_spaced
from deepfake_lab.video.tracks import link_tracks

# Track linking gates for sparsely sampled frames. 32 frames of a 15 s clip are half a
# second apart, so a moving head overlaps its previous box less than in consecutive frames:
# the overlap gate is lowered (0.3 -> 0.2) and a link is also allowed while the landmarks
# moved less than one inter-ocular distance (two faces side by side are 2-4 apart). A face
# missed in more than 2 sampled frames (over a second, often a cut) starts a new track.
TRACK_MIN_IOU = 0.2
TRACK_MAX_LANDMARK = 1.0
TRACK_MAX_GAP = 2


@dataclass(frozen=True)
class VideoOptions:
    """How videos are processed in one run.

    Attributes:
        size: side of the square output crops.
        detector: the face detector, None for centre crops (``align=False``).
        min_face: smallest accepted face box side, in frame pixels.
        max_pixels: frames larger than this (width x height) are rejected.
        frames_per_video: frames sampled per video, evenly spaced.
        options: the JSON key under which rejections are cached; it holds
            ``frames_per_video``, so changing it re-examines rejected videos.
    """

    size: int
    detector: FaceDetector | None
    min_face: int
    max_pixels: int
    frames_per_video: int
    options: str


def video_options_key(image_options: str, frames_per_video: int) -> str:
    """The rejection-cache key of videos: the image options plus ``frames_per_video``.

    Kept apart from the images' key so that adding video support did not invalidate the
    cached rejections of image folders prepared before.
    """
    options = json.loads(image_options)
    options["frames_per_video"] = frames_per_video
    return json.dumps(options, sort_keys=True)


class _VideoReject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class _Source:
    """A video that needs processing: its sha256 and ``stat_key``."""

    sha: str
    stat: tuple[int, int]


@dataclass
class _FaceCrop:
    """One aligned face of one sampled frame, waiting for its track id (the frame's pixels
    are not kept: only the crop)."""

    frame_index: int
    time_s: float
    face: Face | None
    crop: np.ndarray
    transform: np.ndarray
    track_id: int | None = None


@dataclass
class _Extracted:
    """What decoding and detection gave for one video."""

    crops: list[_FaceCrop] = field(default_factory=list)
    frames: int = 0
    width: int = 0
    height: int = 0
    tracks: int = 0
    decode_error: str | None = None


def settle_video(run: PrepareRun, video: SourceVideo, opts: VideoOptions) -> None:
    """Keep, skip or reject ``video``; its outcome is on disk when this returns.

    Args:
        run: the run's bookkeeping (:class:`~deepfake_lab.data.prepare_run.PrepareRun`);
            its summary gets the video counts.
        video: the video file and its labels.
        opts: how to process it.

    Raises:
        OSError: the output cannot be written (the caller turns it into a ``UserError``).
    """
    summary = run.summary
    source = _classify(run, video, opts)
    if source is not None:
        started = time.perf_counter()
        try:
            extracted = _extract(video.path, opts)
        except _VideoReject as exc:
            run.reject_reason(video, source.stat, source.sha, exc.reason, exc.detail, opts.options)
        except MemoryError:  # decoding or detection: the machine's state, not the file's
            oom = out_of_memory_reject("processing")
            run.reject_reason(video, source.stat, source.sha, oom.reason, oom.detail, opts.options)
        else:
            records = _write(run.out, video, source, extracted, opts)
            mf.append_records(run.out, records)  # only now that all its PNGs are in place
            run.records.extend(records)
            summary.kept += 1
            summary.videos_kept += 1
            summary.frames_sampled += extracted.frames
            summary.video_faces_kept += len(records)
            summary.video_tracks += extracted.tracks
            summary.videos_damaged += extracted.decode_error is not None
        summary.video_seconds += time.perf_counter() - started
        summary.videos_processed += 1
    run.rejections.settle(str(video.path))


def _classify(run: PrepareRun, video: SourceVideo, opts: VideoOptions) -> _Source | None:
    """Hash ``video`` unless it is done, rejected again or a duplicate (None then).

    The same rules as ``PrepareRun.classify`` for images; only the hashing streams.
    """
    path = str(video.path)
    done_before = run.summary.skipped_done
    stat = run.needs_work(video, opts.options)
    if stat is None:
        run.summary.videos_skipped_done += run.summary.skipped_done - done_before
        return None
    if stat[0] == 0:
        run.reject_reason(video, stat, None, "empty_file", "the file has 0 bytes", opts.options)
        return None
    try:
        sha = sha256_file(video.path)
    except OSError as exc:
        run.reject_reason(video, stat, None, "unreadable", os_error_detail(exc), opts.options)
        return None
    kept = run.done_by_sha.get(sha)
    if kept is not None and kept.get("source") != path and mf.source_unchanged(kept):
        _duplicate(run, video, stat, sha, str(kept["source"]), opts)
        return None
    if sha in run.first_seen:
        _duplicate(run, video, stat, sha, run.first_seen[sha], opts)
        return None
    run.first_seen[sha] = path
    if kept is not None:  # kept before, under a path or timestamp that no longer is
        run.summary.skipped_done += 1
        run.summary.videos_skipped_done += 1
        return None
    return _Source(sha, stat)


def _duplicate(
    run: PrepareRun,
    video: SourceVideo,
    stat: tuple[int, int],
    sha: str,
    of: str,
    opts: VideoOptions,
) -> None:
    detail = f"same bytes as {of}"
    run.reject_reason(video, stat, sha, "duplicate", detail, opts.options, duplicate_of=of)


def _extract(path: Path, opts: VideoOptions) -> _Extracted:
    """Decode the sampled frames of ``path``, find, align and track its faces (in memory).

    Raises:
        _VideoReject: the video cannot be opened, no frame decodes, a frame is larger than
            ``max_pixels``, or no usable face is in any sampled frame.
    """
    result = _Extracted()
    per_frame: list[tuple[int, float, list[Face]]] = []
    found = biggest = bad_landmarks = 0
    try:
        frames = iter_evenly_spaced(path, opts.frames_per_video)
    except VideoDecodeError as exc:
        raise _VideoReject(exc.reason, exc.detail) from None
    except UserError as exc:  # unreadable (permissions), vanished since it was listed
        raise _VideoReject("unreadable", str(exc)) from None
    except MemoryError:  # not "corrupt": settle_video makes it a transient rejection
        raise
    except Exception as exc:  # noqa: BLE001 - a PyAV/FFmpeg surprise must not end the run
        raise _VideoReject("corrupt", f"{type(exc).__name__}: {exc}") from None
    try:
        while (frame := _next_frame(frames, result)) is not None:
            height, width = frame.image.shape[:2]
            if width * height > opts.max_pixels:
                detail = f"{width}x{height} frames exceed --max-pixels {opts.max_pixels}"
                raise _VideoReject("too_large", detail)
            result.frames += 1
            result.width, result.height = width, height
            if opts.detector is None:
                crop, transform = center_crop(frame.image, opts.size)
                result.crops.append(_FaceCrop(frame.index, frame.time_s, None, crop, transform))
                continue
            faces = opts.detector.detect(frame.image)
            found += len(faces)
            biggest = max([biggest, *(f.min_side for f in faces)])
            kept: list[Face] = []
            for face in faces:
                if face.min_side < opts.min_face:
                    continue
                try:
                    crop, transform = align_face(frame.image, face.landmarks, opts.size)
                except ValueError:  # degenerate landmarks: this face only
                    bad_landmarks += 1
                    continue
                kept.append(face)
                result.crops.append(_FaceCrop(frame.index, frame.time_s, face, crop, transform))
            per_frame.append((frame.index, frame.time_s, kept))  # faceless frames age tracks
    finally:
        frames.close()  # the file closes now, also when a frame is rejected as too large
    if result.frames == 0:
        raise _VideoReject("corrupt", "no frame could be decoded")
    if not result.crops:
        raise _no_face(result, found, biggest, bad_landmarks, opts.min_face)
    if opts.detector is not None:
        result.tracks = _assign_tracks(per_frame, result.crops)
    return result


def _next_frame(frames: Iterator[Frame], result: _Extracted) -> Frame | None:
    """The next sampled frame; None at the end or where decoding broke (then recorded in
    ``result.decode_error``; with no frame before it, a rejection)."""
    try:
        return next(frames, None)
    except VideoDecodeError as exc:
        # A transient failure keeps nothing: the frames before it would be taken for all.
        if result.frames == 0 or exc.reason in TRANSIENT_REASONS:
            raise _VideoReject(exc.reason, str(exc)) from None
        # The frames before the break are good (decode.py's contract): keep their faces.
        where = without_path(str(exc), exc.path)  # the path is the record's source
        result.decode_error = f"{exc.reason}: {where}"
    except MemoryError:  # not damage: settle_video makes it a transient rejection
        raise
    except Exception as exc:  # noqa: BLE001 - a PyAV/FFmpeg surprise must not end the run
        if result.frames == 0:
            raise _VideoReject("corrupt", f"{type(exc).__name__}: {exc}") from None
        result.decode_error = f"corrupt: {type(exc).__name__}: {exc}"
    return None


def _no_face(
    result: _Extracted, found: int, biggest: float, bad_landmarks: int, min_face: int
) -> _VideoReject:
    """The rejection of a video without any usable face, saying what was seen instead."""
    where = f"in the {result.frames} sampled frames"
    if result.decode_error:
        where += f" (decoding stopped early: {result.decode_error})"
    if bad_landmarks:
        return _VideoReject("bad_landmarks", f"{bad_landmarks} face(s) {where} could not align")
    if found:
        detail = f"largest face {where} is {biggest:.0f} px, under --min-face {min_face}"
        return _VideoReject("face_too_small", detail)
    return _VideoReject("no_face", f"the detector found no face {where}")


def _assign_tracks(per_frame: list[tuple[int, float, list[Face]]], crops: list[_FaceCrop]) -> int:
    """Set each crop's ``track_id``; returns the number of tracks."""
    try:
        tracks = link_tracks(
            per_frame,
            min_iou=TRACK_MIN_IOU,
            max_landmark=TRACK_MAX_LANDMARK,
            max_gap=TRACK_MAX_GAP,
            min_length=1,  # a face seen once is still a face worth its crop
        )
    except UserError:
        # Linking refuses frames out of order (a stream with broken timestamps): every face
        # then starts its own track rather than the video being lost.
        for track_id, crop in enumerate(crops):
            crop.track_id = track_id
        return len(crops)
    by_face = {id(tf.face): track.id for track in tracks for tf in track.faces}
    for crop in crops:
        crop.track_id = by_face.get(id(crop.face))
    missing = [c for c in crops if c.track_id is None]
    for track_id, crop in enumerate(missing, start=len(tracks)):  # not expected; never lost
        crop.track_id = track_id
    return len(tracks) + len(missing)


def _write(
    out: Path, video: SourceVideo, source: _Source, extracted: _Extracted, opts: VideoOptions
) -> list[dict[str, Any]]:
    """Write the crops of one video; returns its manifest records, in frame then face order."""
    records = []
    detector_name = getattr(opts.detector, "registry_name", None)
    for item in extracted.crops:
        output = mf.video_output_name(source.sha, item.frame_index, item.track_id)
        write_png(out / output, item.crop)
        face = item.face
        records.append(
            {
                "output": output,
                "source": str(video.path),
                "sha256": source.sha,
                "size": opts.size,
                "aligned": opts.detector is not None,
                "split": video.split,
                "detector": detector_name,
                "score": None if face is None else round(face.score, 4),
                "box": None if face is None else [round(v, 2) for v in face.box],
                "landmarks": None if face is None else np.round(face.landmarks, 2).tolist(),
                "landmarks_estimated": None if face is None else face.landmarks_estimated,
                "transform": np.round(item.transform, 6).tolist(),
                "source_width": extracted.width,
                "source_height": extracted.height,
                "source_bytes": source.stat[0],
                "source_mtime_ns": source.stat[1],
                **video.labels.fields(),
                "video_id": source.sha[:16],
                "frame_index": item.frame_index,
                # NaN (a frame without timestamp in a stream without frame rate) is no JSON.
                "timestamp": None if math.isnan(item.time_s) else round(item.time_s, 4),
                "track_id": item.track_id,
                "video_faces": len(extracted.crops),
                "decode_error": extracted.decode_error,
            }
        )
    return records
