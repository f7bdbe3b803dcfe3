"""Opening a video file: only video containers, only local files, one-line errors.

FFmpeg opens far more than video files: given a concat script, an HLS or DASH playlist or an
image sequence pattern it reads *other* files or URLs, whatever the name of the file it was
given (an ffconcat script named ``clip.mp4`` decodes the file it names). Every container is
therefore opened by :func:`open_container`, which lets FFmpeg use only the demuxers of
:data:`VIDEO_DEMUXERS` (``format_whitelist``) and only the ``file`` protocol
(``protocol_whitelist``: no network, no ``concat:``/``subfile:``/``data:`` URLs), by an
absolute path (a name like ``concat:a.mp4`` is never taken for a protocol).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import av

from deepfake_lab.data.decode import not_a_file
from deepfake_lab.errors import UserError

#: The FFmpeg demuxers a video may be read with: containers (MP4/MOV/3GP, Matroska/WebM,
#: AVI, MPEG-PS, MPEG-TS, FLV, ASF/WMV, Ogg, IVF) and raw video streams (MPEG-1/2, MPEG-4,
#: H.264, HEVC). None of them opens another file or URL; playlists (``hls``, ``dash``),
#: scripts (``concat``), image sequences and stills (``image2``, ``*_pipe``), ``tee``,
#: ``lavfi``, ``subfile``, ``data`` and the rest are refused.
VIDEO_DEMUXERS = (
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "mpeg", "mpegts",
    "flv", "asf", "ogg", "ivf", "mpegvideo", "m4v", "h264", "hevc",
)  # fmt: skip

_OPEN_OPTIONS = {"format_whitelist": ",".join(VIDEO_DEMUXERS), "protocol_whitelist": "file"}

# What open_video says about a file FFmpeg would read with a demuxer outside VIDEO_DEMUXERS.
_NOT_A_CONTAINER = (
    "not a video container read here (MP4/MOV, Matroska/WebM, AVI, MPEG-PS/TS, FLV, ASF, "
    "Ogg or a raw video stream): FFmpeg takes it for another format, such as a still "
    "image, a playlist or a concat script"
)


class VideoDecodeError(UserError):
    """A video that cannot be opened, or whose decoding stopped before its end.

    Attributes:
        path: the video file.
        frames_decoded: how many frames were yielded before the error (0 at open).
        detail: one human sentence saying what went wrong.
        reason: ``not_video``, ``truncated``, ``corrupt`` or the transient
            ``out_of_memory`` (see :mod:`deepfake_lab.video.decode`).
        index: stream index of the frame where decoding stopped (None at open).
        time_s: that frame's time in seconds, when known.
    """

    def __init__(
        self,
        path: Path,
        detail: str,
        *,
        reason: str,
        frames_decoded: int = 0,
        index: int | None = None,
        time_s: float | None = None,
    ) -> None:
        where = ""
        if index is not None:
            at = f"frame {index}" + ("" if time_s is None else f" ({time_s:.2f} s)")
            where = f"decoding stopped at {at} after {frames_decoded} frame(s) were read: "
        super().__init__(f"{path}: {where}{detail}")
        self.path, self.frames_decoded, self.detail = path, frames_decoded, detail
        self.reason, self.index, self.time_s = reason, index, time_s


def allowed_demuxer(name: str) -> bool:
    """Whether FFmpeg's demuxer ``name`` (``container.format.name``, e.g.
    ``"mov,mp4,m4a,3gp,3g2,mj2"``) is one of :data:`VIDEO_DEMUXERS`."""
    return any(part in VIDEO_DEMUXERS for part in name.split(","))


def open_container(path: Path) -> av.container.InputContainer:
    """``av.open`` for reading, restricted to :data:`VIDEO_DEMUXERS` and local files (see the
    module docstring), tags that are not UTF-8 read with replacement characters; no other
    check. Use :func:`open_video` for one-line errors.

    Raises:
        av.FFmpegError: FFmpeg cannot open it, or would need another demuxer or protocol
            (``EINVAL``).
        OSError: the file cannot be read.
        VideoDecodeError: the demuxer is not allowed (where FFmpeg ignored the whitelist).
    """
    container = av.open(
        os.path.abspath(path),
        mode="r",
        container_options=dict(_OPEN_OPTIONS),
        # Tags that are not UTF-8 (a damaged or hostile header) must not stop the open: PyAV
        # decodes them strictly by default and raises UnicodeDecodeError.
        metadata_errors="replace",
    )
    if not allowed_demuxer(container.format.name):  # the whitelist should have refused it
        container.close()
        raise VideoDecodeError(Path(path), _NOT_A_CONTAINER, reason="not_video")
    return container


def open_video(path: Path, need_video: bool = True) -> av.container.InputContainer:
    """Open ``path`` for reading, or raise a one-line error saying why not."""
    if not os.path.lexists(path):
        raise UserError(f"video not found: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a video file")
    why = not_a_file(path)
    if why is not None:  # FFmpeg would wait forever on a named pipe
        raise VideoDecodeError(path, why, reason="not_video")
    try:
        container = open_container(path)
    except MemoryError:  # before FFmpegError: PyAV's ENOMEM error is both
        raise out_of_memory_error(path, "opening") from None
    except OSError as exc:  # before FFmpegError: PyAV's PermissionError is both
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    except av.FFmpegError as exc:
        if path.stat().st_size == 0:
            raise VideoDecodeError(path, "the file has 0 bytes", reason="not_video") from None
        cut = _cut_mp4_detail(path)
        if cut is not None:
            raise VideoDecodeError(path, cut, reason="truncated") from None
        # EINVAL at open is the whitelist refusing the demuxer FFmpeg chose.
        detail = (
            _NOT_A_CONTAINER
            if isinstance(exc, av.ArgumentError)
            else f"not a readable video ({ffmpeg_detail(exc)})"
        )
        raise VideoDecodeError(path, detail, reason="not_video") from None
    kinds = sorted({s.type for s in container.streams})
    detail = None
    if need_video and not container.streams.video:
        detail = f"no video stream (streams: {', '.join(kinds) or 'none'})"
    elif need_video and container.streams.video[0].codec_context is None:
        # PyAV gives no codec context for a codec id FFmpeg has no decoder for.
        detail = "its video stream is in a codec that cannot be decoded here"
    if detail is not None:
        container.close()
        raise VideoDecodeError(path, detail, reason="not_video")
    return container


def out_of_memory_error(path: Path, what: str, **where: Any) -> VideoDecodeError:
    """The transient ``out_of_memory`` error: the machine's state, not damage in the file."""
    return VideoDecodeError(
        path, f"ran out of memory while {what} it; try again later", reason="out_of_memory", **where
    )


def _cut_mp4_detail(path: Path) -> str | None:
    """Why FFmpeg refused an MP4/MOV, when it is because the file is cut short; else None.

    Walks the top-level boxes (headers only): a recording or download cut short leaves the
    media data ('mdat') running past the end of the file, and the index ('moov'), which most
    recorders write last, missing.
    """
    size, pos, seen = path.stat().st_size, 0, set()
    with path.open("rb") as fh:
        if fh.read(8)[4:8] != b"ftyp":
            return None
        while pos + 8 <= size and len(seen) < 10_000:  # bounded against chains of tiny boxes
            fh.seek(pos)
            header = fh.read(16)
            box_size, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if box_size == 1 and len(header) == 16:
                box_size = int.from_bytes(header[8:16], "big")
            elif box_size == 0:
                box_size = size - pos
            if box_size < 8:
                return None  # not a box structure this walk understands
            seen.add((pos, kind))
            if pos + box_size > size:
                missing = "" if any(k == b"moov" for _, k in seen) else ", and no index ('moov')"
                return (
                    f"the file is cut short: its '{kind.decode('ascii', 'replace')}' box ends at "
                    f"byte {pos + box_size} but the file has {size} bytes{missing}"
                )
            pos += box_size
    if not any(k == b"moov" for _, k in seen):
        return "the file has no index ('moov' box): it was probably cut short"
    return None


def ffmpeg_detail(exc: av.FFmpegError) -> str:
    """FFmpeg's message, without the errno and file name PyAV adds."""
    text = exc.strerror or str(exc)
    log = getattr(exc, "log", None)
    if log and len(log) == 3 and log[2]:
        text = f"{text}: [{log[1]}] {log[2]}"
    return re.sub(r"\s+", " ", text).strip()
