"""``deepfake-lab detect`` on videos: one record per video with per-frame, per-track and
per-video scores, the main track's temporal consistency, whether the video carries this
tool's watermark, optionally the audio-visual sync reading, and a timeline PNG of P(fake)
over time per track."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepfake_lab.errors import UserError
from deepfake_lab.provenance.verify_video import verify_video
from deepfake_lab.report.video_plots import plot_timeline
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
            the video's file name, plus a hash of its path when two share a name).
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
        ``timeline`` (PNG path or None) and ``error``. A video that cannot be opened is an
        "error" record, never fatal.

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
            except UserError as exc:
                out.append(base | {"probability": None, "label": "error", "error": str(exc)})
                continue
            timeline = None
            if timeline_dir is not None:
                timeline = str(
                    plot_timeline(
                        scan.tracks,
                        det.threshold,
                        Path(timeline_dir) / f"{stems[v]}.timeline.png",
                        title=Path(v).name,
                    )
                )
            main = max(scan.tracks, key=lambda t: t["frames"], default=None)
            mark = verify_video(v) if watermark else {"watermark": None}
            out.append(
                base
                | {
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
                    "sync": (
                        _sync(v, finder, lips, sync_plot_dir, stems[v], start_s, end_s, progress)
                        if sync
                        else None
                    ),
                    "timeline": timeline,
                    "error": scan.error,
                }
            )
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


def picture_stems(videos: list[Path]) -> dict[Path, str]:
    """A file-name stem per video for its pictures: the video's name, with a short hash of
    its path added when another video in the list has the same name."""
    import hashlib
    from collections import Counter

    names = Counter(Path(v).name for v in videos)
    return {
        v: Path(v).name
        if names[Path(v).name] == 1
        else f"{Path(v).name}.{hashlib.sha1(str(v).encode()).hexdigest()[:8]}"
        for v in videos
    }


def _sync(
    path: Path,
    finder: Any,
    lips: Any,
    plot_dir: Path | None,
    stem: str,
    start_s: float | None = None,
    end_s: float | None = None,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> dict[str, Any]:
    """``av_sync``'s headline numbers for a video with audio (and its plot in ``plot_dir``);
    ``{"skipped": ...}`` without an audio track; ``{"error": ...}`` when it cannot be read
    (no face, silent, too short)."""
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

        out["plot"] = str(plot_sync(r, Path(plot_dir) / f"{stem}.sync.png"))
    return out


def split_media(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """``(image paths, video files)``: video files given directly or found in folders;
    a folder goes to the image side only if it holds images."""
    from deepfake_lab.data.decode import IMAGE_SUFFIXES

    images, videos = [], []
    for p in map(Path, paths):
        if p.is_dir():
            files = [f for f in p.rglob("*") if f.is_file()]
            videos += sorted(f for f in files if is_video(f))
            if any(f.suffix.lower() in IMAGE_SUFFIXES for f in files):
                images.append(p)
        elif is_video(p):
            if not p.is_file():
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

    doc = json.loads(path.read_text()) if merge else {"model": det.identity}
    doc["videos"] = records
    if interrupted:
        doc["interrupted"] = f"stopped by the user after {len(records)} video(s)"
    atomic_write_json(path, doc)
