"""What an upload may be: size limits, and its media type read from its first bytes.

The name a client gives a file says nothing about it: the type is sniffed from the content
and the file is stored under a random name with the sniffed suffix, so a ``.png`` that is an
ffconcat script, or a ``.jpg`` that is a zip, is refused before any decoder sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from deepfake_lab.errors import UserError

#: Bytes read to decide a file's type.
SNIFF_BYTES = 512

MediaKind = Literal["image", "video"]


@dataclass(frozen=True)
class ServeLimits:
    """Bounds on what one request may cost.

    Attributes:
        max_bytes: largest upload (bytes); larger ones get 413 while streaming in.
        max_pixels: largest image (width x height), checked on the header before decoding.
        max_video_s: longest video (seconds, from its header).
        max_video_frames: most frames a video may hold (from its header, or duration x fps).
        scan_frames: frames scanned per video, evenly spaced (the detector's time per video
            is bounded by this, not by the video's length).
        max_waiting: video jobs that may wait in the queue; one more gets 503.
        workers: video jobs scanned at once.
        max_image_requests: image scans at once.
        max_image_waiting: image requests that may wait for a scan; one more gets 503.
        job_ttl_s: a finished job's result and pictures are deleted this long after it ends.
        max_kept_jobs: finished jobs kept at most; past it the oldest go before their TTL
            (so memory and disk stay bounded however many videos arrive within a TTL).
    """

    max_bytes: int = 100 * 2**20
    max_pixels: int = 40_000_000
    max_video_s: float = 600.0
    max_video_frames: int = 36_000
    scan_frames: int = 32
    max_waiting: int = 8
    workers: int = 1
    max_image_requests: int = 2
    max_image_waiting: int = 8
    job_ttl_s: float = 900.0
    max_kept_jobs: int = 256

    def __post_init__(self) -> None:
        for name in (
            "max_bytes",
            "max_pixels",
            "max_video_frames",
            "scan_frames",
            "max_waiting",
            "workers",
            "max_image_requests",
            "max_kept_jobs",
        ):
            if getattr(self, name) < 1:
                raise UserError(f"serve: {name} must be 1 or more, got {getattr(self, name)}")
        if self.max_image_waiting < 0:
            raise UserError(
                f"serve: max_image_waiting must be 0 or more, got {self.max_image_waiting}"
            )
        for name in ("max_video_s", "job_ttl_s"):
            if not getattr(self, name) > 0:
                raise UserError(f"serve: {name} must be above 0, got {getattr(self, name)}")


def sniff(head: bytes) -> tuple[MediaKind, str] | None:
    """``(kind, suffix)`` of a file from its first bytes, or None when it is neither an image
    we decode (PNG, JPEG, WebP, BMP) nor a video container we open (MP4/MOV, Matroska/WebM,
    AVI, MPEG-TS, MPEG-PS)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image", ".png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image", ".jpg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image", ".webp"
    # BMP: "BM", then a DIB header whose size is one of the known versions.
    if head[:2] == b"BM" and len(head) >= 18:
        if int.from_bytes(head[14:18], "little") in {12, 40, 52, 56, 64, 108, 124}:
            return "image", ".bmp"
    if head[4:8] == b"ftyp":
        return "video", ".mov" if head[8:10] == b"qt" else ".mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video", ".webm" if b"webm" in head else ".mkv"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video", ".avi"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "video", ".mpg"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:  # MPEG-TS sync bytes
        return "video", ".ts"
    return None


def check_video_header(
    duration_s: float | None, n_frames: int | None, fps: float, limits: ServeLimits
) -> None:
    """Refuse a video longer than the limits allow, from what its header says.

    Raises:
        UserError: too long, too many frames, or a length the header does not give.
    """
    if duration_s is not None and duration_s > limits.max_video_s:
        raise UserError(
            f"the video is {duration_s:.0f} s long; this server takes at most "
            f"{limits.max_video_s:.0f} s"
        )
    frames = (
        n_frames
        if n_frames is not None
        else (round(duration_s * fps) if duration_s is not None and fps > 0 else None)
    )
    if frames is None:
        raise UserError("the video's header gives neither its length nor its frame count")
    if frames > limits.max_video_frames:
        raise UserError(
            f"the video has {frames} frames; this server takes at most {limits.max_video_frames}"
        )
