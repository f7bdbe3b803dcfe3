"""What a ``data prepare`` run did: :class:`PrepareSummary`, also ``OUT/summary.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: Frames sampled per video unless told otherwise (``--frames-per-video``).
DEFAULT_FRAMES_PER_VIDEO = 32


@dataclass
class PrepareSummary:
    """What a run did (also written to ``OUT/summary.json``).

    Sources are image files and videos; a kept video counts once in ``kept`` however many
    crops it gave.

    Attributes:
        src, out: the folders, resolved.
        layout: ``"celeba"``, ``"ffhq"``, ``"faceforensics"``, ``"voxceleb"`` or
            ``"folder"``, with what was found.
        detector: detector name, None with ``align=False``.
        size: output side in pixels.
        aligned: whether faces were aligned (else centre-cropped).
        found: sources found (after ``limit``).
        kept: sources kept by this run.
        skipped_done: sources already in the manifest from an earlier run.
        rejected: reason -> count, for this run.
        ignored_files: files without an image or video suffix (or outside the dataset
            layout), passed over.
        total_kept: records (crops) in the manifest at the end.
        removed_temp_files, dropped_records: what recovery from an interrupted run cleaned.
        elapsed_s: wall time; images_per_s: sources found / elapsed_s.
        frames_per_video: frames sampled per video.
        videos_found, videos_kept, videos_skipped_done: the video share of ``found``,
            ``kept`` and ``skipped_done``.
        videos_damaged: kept videos whose decoding broke part-way (faces of the frames
            before the break kept).
        frames_sampled: frames decoded from the videos kept by this run.
        video_faces_kept: crops written from those videos.
        video_tracks: face tracks in those videos.
        videos_processed: videos decoded by this run (kept or rejected);
            video_seconds: time spent on them; seconds_per_video: the mean.
    """

    src: str
    out: str
    layout: str
    detector: str | None
    size: int
    aligned: bool
    found: int = 0
    kept: int = 0
    skipped_done: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    ignored_files: int = 0
    total_kept: int = 0
    removed_temp_files: int = 0
    dropped_records: int = 0
    elapsed_s: float = 0.0
    images_per_s: float = 0.0
    frames_per_video: int = DEFAULT_FRAMES_PER_VIDEO
    videos_found: int = 0
    videos_kept: int = 0
    videos_skipped_done: int = 0
    videos_damaged: int = 0
    frames_sampled: int = 0
    video_faces_kept: int = 0
    video_tracks: int = 0
    videos_processed: int = 0
    video_seconds: float = 0.0
    seconds_per_video: float = 0.0

    @property
    def rejected_total(self) -> int:
        """All rejections of this run."""
        return sum(self.rejected.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)
