"""``deepfake-lab detect`` on videos: one record per video with per-frame, per-track and
per-video scores, the main track's temporal consistency, whether the video carries this
tool's watermark, optionally the audio-visual sync reading, and a timeline PNG of P(fake)
over time per track."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepfake_lab.data.decode import IMAGE_SUFFIXES, not_a_file, walk_media
from deepfake_lab.errors import UserError
from deepfake_lab.provenance.verify_video import verify_video
from deepfake_lab.report.video_plots import plot_timeline
from deepfake_lab.safe_text import file_stem, for_records
from deepfake_lab.video.decode import VIDEO_SUFFIXES, check_range
from deepfake_lab.video.lips import lip_tracker
from deepfake_lab.video.scan import AGGREGATIONS, scan_video


class ScanInterrupted(KeyboardInterrupt):
    """Ctrl-C during a scan of several videos; ``records`` holds the videos finished."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        super().__init__()
        self.records = records
        self.saved_to: Path | None = None  # where they were written, if they were


def is_video(path: Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def detect_videos(
    det: Any,
    videos: list[Path],
    finder: Any,
    timeline_dir: Path | None = None,
    aggregation: str = "mean",
    topk: int = 5,
    stride: int = 1,
    max_frames: int | None = None,
    frames: int | None = None,
    sync: bool = False,
    lips: Any = None,
    sync_plot_dir: Path | None = None,
    watermark: bool = True,
    start_s: float | None = None,
    end_s: float | None = None,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> list[dict[str, Any]]:
    """Scan each video with a loaded detector.

    Args:
        det: a ``LoadedDetector``.
        videos: video files.
        finder: a face detector.
        timeline_dir: write ``<stem>.timeline.png`` per video here (optional; the stem is
            the video's file name, plus a hash of its path when two share a name: see
            :func:`picture_stems`).
        aggregation, topk: how the per-face scores become the video score.
        stride, max_frames: which frames; ``frames``: instead, this many evenly spaced.
        sync: also read the audio-visual offset (``avsync.av_sync``, a second pass over
            every frame) of videos with an audio track.
        lips: a ``lips.LipTracker`` for the sync reading (None: the crop's openness).
        sync_plot_dir: write ``<stem>.sync.png`` (``plot_sync``) per reading here.
        watermark: look for this tool's watermark (64 frames, ~0.1 s a video); False
            leaves ``watermark`` None (``eval detector`` has no use for it).
        start_s, end_s: only this time range of each video (with ``stride``).
        progress: called as ``progress("videos", done, total)`` after each video and
            ``progress("frames", done, expected or None)`` after each frame.

    Returns:
        Records with ``path``, ``model`` (``name:weights-sha256-prefix``), ``probability``
        (video P(fake) or None), ``label`` ("fake" | "real" | "no_face" | "error"),
        ``threshold``, ``aggregation``, ``frames``, ``faces_per_frame``, ``tracks``,
        ``frame_scores``, ``consistency`` (the longest track's, or None), ``watermark`` and
        ``watermark_fingerprint`` (this tool's mark in a majority of 64 evenly spaced
        frames: ``verify_video``), ``sync`` (with ``sync``: ``av_sync``'s offset,
        confidence, uncertainty, chance p and ``plot``, or ``{"error": ...}`` when it cannot
        be read, or ``{"skipped": "no audio track"}``; None when not asked for),
        ``timeline`` (PNG path or None), ``error``, and ``not_written`` (picture -> why)
        when a timeline or sync plot could not be drawn or written. A video that cannot be
        opened is an "error" record, an entry that holds no file (a named pipe, a link that
        loops or leads nowhere: ``data.decode.not_a_file``) a "skipped" one, and anything
        else that goes wrong with one video an "error" record too: never fatal to the others.

    Raises:
        ScanInterrupted: on Ctrl-C, with the records of the videos finished before it.
    """
    check_video_options(aggregation, topk, stride, max_frames, frames, start_s, end_s)
    out = []
    stems = picture_stems(videos)
    frame_progress = None if progress is None else functools.partial(progress, "frames")
    try:
        for i, v in enumerate(videos):
            if progress is not None:
                progress("videos", i, len(videos))
            base = {"path": str(v), "model": det.model_id, "threshold": det.threshold}
            base["aggregation"] = aggregation
            why = not_a_file(v)
            if why is not None:
                out.append(base | {"probability": None, "label": "skipped", "error": why})
                continue
            try:
                scan = scan_video(
                    v,
                    det,
                    finder,
                    stride=stride,
                    max_frames=max_frames,
                    aggregation=aggregation,
                    topk=topk,
                    frames=frames,
                    start_s=start_s,
                    end_s=end_s,
                    progress=frame_progress,
                )
                not_written: dict[str, str] = {}
                timeline = None
                if timeline_dir is not None:
                    timeline = _picture(
                        not_written,
                        "timeline",
                        plot_timeline,
                        scan.tracks,
                        det.threshold,
                        Path(timeline_dir) / f"{stems[v]}.timeline.png",
                        title=Path(v).name,
                    )
                main = max(scan.tracks, key=lambda t: t["frames"], default=None)
                mark = verify_video(v) if watermark else {"watermark": None}
                reading = None
                if sync:
                    reading = _sync(
                        v,
                        finder,
                        lips,
                        sync_plot_dir,
                        stems[v],
                        not_written,
                        start_s,
                        end_s,
                        progress,
                    )
            except UserError as exc:
                out.append(base | {"probability": None, "label": "error", "error": str(exc)})
                continue
            except Exception as exc:  # noqa: BLE001 - one video's failure must cost that video only
                error = f"{v}: could not be scanned ({type(exc).__name__}: {exc})"
                out.append(base | {"probability": None, "label": "error", "error": error})
                continue
            record = base | {
                "probability": scan.score,
                "label": scan.label,
                "frames": scan.frames,
                "faces_per_frame": scan.faces_per_frame,
                "tracks": scan.tracks,
                "frame_scores": scan.frame_scores,
                "consistency": main["consistency"] if main else None,
                "watermark": mark["watermark"],
                "watermark_fingerprint": (
                    mark["payload"]["fingerprint"] if mark["watermark"] else None
                ),
                "sync": reading,
                "timeline": timeline,
                "error": scan.error,
            }
            if not_written:
                record["not_written"] = not_written
            out.append(record)
    except KeyboardInterrupt:
        raise ScanInterrupted(out) from None
    if progress is not None:
        progress("videos", len(videos), len(videos))
    return out


def check_video_options(
    aggregation: str = "mean",
    topk: int = 5,
    stride: int = 1,
    max_frames: int | None = None,
    frames: int | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
) -> None:
    """The video options of ``detect`` and ``eval detector``, checked before any work.

    Raises:
        UserError: one line naming the option.
    """
    if aggregation not in AGGREGATIONS:
        raise UserError(
            f"unknown aggregation {aggregation!r}; choose one of {', '.join(AGGREGATIONS)}"
        )
    if topk < 1:
        raise UserError(f"--topk must be 1 or more, got {topk}")
    if stride < 1 or any(n is not None and n < 1 for n in (max_frames, frames)):
        raise UserError("--stride, --max-frames and --frames must be 1 or more")
    check_range(start_s, end_s, ("--start", "--end"))
    if frames is not None and (start_s is not None or end_s is not None):
        raise UserError(
            "--frames spreads frames over the whole video; use --start/--end with --stride"
        )


#: The longest ending :func:`picture_stems` leaves room for (``.timeline.png``).
_PICTURE_SUFFIX_BYTES = len(".timeline.png")


def picture_stems(videos: list[Path]) -> dict[Path, str]:
    """A file-name stem per video for its pictures: the video's name, with a short hash of
    its path added when another video in the list has the same name; cleaned and shortened
    by ``safe_text.file_stem`` when it is too long for a file name or holds characters a
    name should not (undecodable bytes, controls, bidi marks)."""
    import hashlib
    from collections import Counter

    names = Counter(Path(v).name for v in videos)

    def stem(v: Path) -> str:
        name = Path(v).name
        if names[name] > 1:
            digest = hashlib.sha1(str(v).encode("utf-8", "surrogateescape")).hexdigest()[:8]
            name = f"{name}.{digest}"
        return file_stem(name, reserve=_PICTURE_SUFFIX_BYTES)

    return {v: stem(v) for v in videos}


def _picture(
    not_written: dict[str, str], what: str, draw: Callable[..., Path], *args: Any, **kwargs: Any
) -> str | None:
    """``str(draw(*args, **kwargs))``; when drawing or writing fails, None, with the reason
    in ``not_written[what]``: a picture that cannot be made costs that picture only."""
    try:
        return str(draw(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - matplotlib and the file system raise many kinds
        not_written[what] = f"{type(exc).__name__}: {exc}"
        return None


def _sync(
    path: Path,
    finder: Any,
    lips: Any,
    plot_dir: Path | None,
    stem: str,
    not_written: dict[str, str],
    start_s: float | None = None,
    end_s: float | None = None,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> dict[str, Any]:
    """``av_sync``'s headline numbers for a video with audio (and its plot in ``plot_dir``,
    or why not in ``not_written["sync plot"]``); ``{"skipped": ...}`` without an audio
    track; ``{"error": ...}`` when it cannot be read (no face, silent, too short)."""
    from deepfake_lab.video.avsync import av_sync
    from deepfake_lab.video.decode import probe

    if not probe(path).has_audio:
        return {"skipped": "no audio track"}
    try:
        report = None if progress is None else functools.partial(progress, "sync")
        r = av_sync(path, finder, lips=lips, start_s=start_s, end_s=end_s, progress=report)
    except UserError as exc:
        return {"error": str(exc)}
    keys = ("offset_ms", "confidence", "offset_uncertainty_ms", "chance_p", "mouth_signals")
    out: dict[str, Any] = {k: r[k] for k in keys} | {"plot": None}
    if plot_dir is not None:
        from deepfake_lab.report.video_plots import plot_sync

        plot = Path(plot_dir) / f"{stem}.sync.png"
        out["plot"] = _picture(not_written, "sync plot", plot_sync, r, plot)
    return out


def split_media(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """``(image paths, video files)``: video files given directly or found in folders;
    a folder goes to the image side only if it holds images. Entries that carry a video
    suffix but hold no file (``data.decode.walk_media``) are listed, for the scan to report
    them as skipped.

    Raises:
        UserError: a video path that does not exist.
    """
    images, videos = [], []
    for p in map(Path, paths):
        if p.is_dir():
            found = walk_media(p, IMAGE_SUFFIXES.union(VIDEO_SUFFIXES))
            videos += [f for f in found if is_video(f)]
            if any(not is_video(f) for f in found):
                images.append(p)
        elif is_video(p):
            if not os.path.lexists(p):
                raise UserError(f"not found: {p}")
            videos.append(p)
        else:
            images.append(p)
    return images, videos


def detect_video_files(
    model: str | Path,
    videos: list[Path],
    json_path: str | Path | None = None,
    timeline_dir: str | Path | None = None,
    aggregation: str = "mean",
    topk: int = 5,
    stride: int = 1,
    max_frames: int | None = None,
    device: str = "auto",
    face_detector: str = "yunet",
    face_model: str | Path | None = None,
    merge_json: bool = False,
    frames: int | None = None,
    sync: bool = False,
    lips: str = "auto",
    report_dir: str | Path | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> list[dict[str, Any]]:
    """``detect_videos`` with the detector and face finder loaded from their names; with
    ``json_path``, the records go under ``"videos"``: added to the file ``detect`` just wrote
    for the images when ``merge_json``, else in a new file. ``lips`` ("auto" | "on" |
    "off"): the 68-point lip opening in the sync reading (auto: when the extra is
    installed). ``report_dir``: timelines (unless ``timeline_dir`` says otherwise) and sync
    plots go there, for ``report.detect_report``. ``start_s``, ``end_s``, ``progress``: as
    in :func:`detect_videos`. Output paths are checked before any video is read."""

    from deepfake_lab.devices import resolve_device
    from deepfake_lab.faces.detectors import build_face_detector
    from deepfake_lab.io import check_output_paths
    from deepfake_lab.models.detectors.loading import load_detector

    check_video_options(aggregation, topk, stride, max_frames, frames, start_s, end_s)
    check_output_paths({"--json": json_path}, {"--timeline": timeline_dir, "--report": report_dir})
    det = load_detector(model, resolve_device(device))
    finder = build_face_detector(face_detector, face_model)
    tracker = lip_tracker(lips) if sync else None
    if timeline_dir is None and report_dir is not None:
        timeline_dir = report_dir
    try:
        records = detect_videos(
            det,
            videos,
            finder,
            Path(timeline_dir) if timeline_dir is not None else None,
            aggregation,
            topk,
            stride,
            max_frames,
            frames,
            sync,
            tracker,
            Path(report_dir) if report_dir is not None else None,
            start_s=start_s,
            end_s=end_s,
            progress=progress,
        )
    except ScanInterrupted as stop:
        # What was finished is kept; with nothing finished, an earlier file stays as it was.
        if json_path is not None and (stop.records or merge_json):
            _write_json(Path(json_path), det, stop.records, merge_json, interrupted=True)
            stop.saved_to = Path(json_path)
        raise
    if json_path is not None:
        _write_json(Path(json_path), det, records, merge_json)
    return records


def _write_json(
    path: Path, det: Any, records: list[dict], merge: bool, interrupted: bool = False
) -> None:
    """The records under ``"videos"``: added to the images' file when ``merge``."""
    import json

    from deepfake_lab.io import atomic_write_json

    doc = json.loads(path.read_text(encoding="utf-8")) if merge else {"model": det.identity}
    doc["videos"] = records
    if interrupted:
        doc["interrupted"] = f"stopped by the user after {len(records)} video(s)"
    atomic_write_json(path, for_records(doc))
