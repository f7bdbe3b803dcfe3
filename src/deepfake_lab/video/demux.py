"""What ``decode`` is built on: the stream's clock, seeking, and the decoding loop that
turns damage into a :class:`~deepfake_lab.video.container.VideoDecodeError` (the reasons are
described in ``decode``'s docstring). Files are opened by :mod:`.container`."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from deepfake_lab.errors import UserError
from deepfake_lab.video.container import (
    VideoDecodeError,
    ffmpeg_detail,
    open_container,
    open_video,
    out_of_memory_error,
)

# A clean end of stream this many frames short of the header still counts as complete: edit
# lists, and decoders that drop undecodable leading frames, lose one or two legitimately.
_SHORTFALL_FRAMES = 3

# How far before start_s a seek is retried when it lands after it (MPEG-PS/TS seek by a
# timestamp search that often finds the next keyframe), in seconds.
_SEEK_BACKOFF_S = (0.0, 1.0, 5.0, 30.0)


@dataclass(frozen=True)
class Frame:
    """One decoded video frame.

    Attributes:
        index: position in the video stream, from 0 (see the module docstring).
        time_s: ``pts * time_base`` in seconds from the container start (``index / fps``
            for a frame without a timestamp).
        image: ``(H, W, 3)`` uint8 RGB.
    """

    index: int
    time_s: float
    image: np.ndarray


@dataclass(frozen=True)
class Clock:
    """A video stream's timestamps as seconds from the container start, and frame indices."""

    time_base: Fraction
    origin_s: float  # the container's start: 0 on the returned clock
    stream_start_s: float  # the stream's first timestamp, where index 0 is
    fps: float

    @classmethod
    def of(cls, container: av.container.InputContainer, stream: av.VideoStream) -> Clock:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        time_base = stream.time_base or Fraction(1, 90000)
        origin_s = (container.start_time or 0) / 1e6
        first = origin_s if stream.start_time is None else float(stream.start_time * time_base)
        return cls(time_base, origin_s, first, float(rate) if rate else 0.0)

    def time_s(self, frame: av.VideoFrame, index: int) -> float:
        if frame.pts is None:
            return index / self.fps if self.fps else math.nan
        return float(frame.pts * self.time_base) - self.origin_s

    def index_at(self, time_s: float) -> int:
        return max(round((time_s + self.origin_s - self.stream_start_s) * self.fps), 0)

    def pts_at(self, time_s: float) -> int:
        return int((time_s + self.origin_s) / self.time_base)

    def after(self, time_s: float) -> float | None:
        """Time of the frame after the one at ``time_s``; None when unknown."""
        return None if math.isnan(time_s) or not self.fps else time_s + 1.0 / self.fps


class _Broken(Exception):
    """The demuxer or decoder failed; ``at_end`` when on the last or a short-read packet."""

    def __init__(self, detail: str, at_end: bool) -> None:
        super().__init__(detail)
        self.detail, self.at_end = detail, at_end


def check_range(
    start_s: float | None,
    end_s: float | None,
    names: tuple[str, str] = ("the start", "the end"),
) -> None:
    """A time range in seconds: a finite start of 0 or more, a finite end after it.

    Args:
        names: what the message calls them (a CLI passes its option names).

    Raises:
        UserError: one line naming the bad value.
    """
    start, end = names
    if start_s is not None and not (math.isfinite(start_s) and start_s >= 0):
        raise UserError(f"{start} must be a number of seconds, 0 or more, got {start_s}")
    if end_s is not None and not (math.isfinite(end_s) and end_s > (start_s or 0.0)):
        raise UserError(f"{end} ({end_s}) must be a number of seconds after {start}")


def video_span_s(
    container: av.container.InputContainer, stream: av.VideoStream
) -> tuple[float, float | None]:
    """``(first, end)``: where the video stream starts and ends, in seconds from the
    container start (the clock of ``Frame.time_s``); ``end`` None when the file states no
    duration. A stream's own duration counts from its first timestamp, the container's
    from the container start."""
    clock = Clock.of(container, stream)
    first = clock.stream_start_s - clock.origin_s
    own = stream.duration is not None and stream.time_base is not None
    own = own or bool(stream.metadata.get("DURATION"))
    duration = header_duration_s(container, stream, sole_stream_only=False)
    if duration is None:
        return first, None
    return first, (first + duration if own else duration)


def header_duration_s(
    container: av.container.InputContainer, stream: av.VideoStream, sole_stream_only: bool
) -> float | None:
    """The video's duration as the file states it; with ``sole_stream_only``, the container's
    duration (its longest stream) is used only when the video is its one stream."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION")  # Matroska states each track's length as a tag
    match = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d*)?)", tag or "")
    if match:
        return int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])
    if container.duration is None or (sole_stream_only and len(container.streams) > 1):
        return None
    return container.duration / 1e6


def count_packets(path: Path) -> int:
    """Video packets in the file, demuxed without decoding (a container of its own, because
    a seek back to 0 is not reliable in MPEG-TS)."""
    container = open_container(path)
    try:
        return sum(1 for p in container.demux(container.streams.video[0]) if p.size)
    except MemoryError:  # before FFmpegError: a count of 0 would read as an empty video
        raise out_of_memory_error(path, "counting the frames of") from None
    except av.FFmpegError:
        return 0  # the decoding pass reports what is wrong, with the frame where it is
    finally:
        container.close()


def _raw_frames(
    container: av.container.InputContainer, stream: av.VideoStream
) -> Iterator[tuple[av.VideoFrame, bool]]:
    """``(frame, at_end)``: ``at_end`` for frames out of the final flush (the file ended)."""
    packet = None
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                yield frame, packet.size == 0
    except av.FFmpegError as exc:
        if isinstance(exc, MemoryError):
            raise  # not damage: _decoded reports it as out_of_memory
        # The demuxer flags a packet it could read only partly: the file ends inside it.
        at_end = packet is not None and (packet.size == 0 or packet.is_corrupt)
        raise _Broken(ffmpeg_detail(exc), at_end) from None


def _seek(
    container: av.container.InputContainer, stream: av.VideoStream, clock: Clock, start_s: float
) -> Iterator[tuple[av.VideoFrame, bool]] | None:
    """Frames from a keyframe at or before ``start_s``; None when decoding from 0 is needed."""
    try:
        # Feed the decoder the first packet before seeking: FFmpeg reads the x264 build from
        # it, to undo old x264 4:4:4 bugs; without it, frames after a seek come out green.
        packets = container.demux(stream)
        for packet in packets:
            if packet.size:
                packet.decode()
                break
        packets.close()
        for backoff in _SEEK_BACKOFF_S:
            if start_s - backoff <= 0:
                return None
            container.seek(clock.pts_at(start_s - backoff), stream=stream, backward=True)
            raw = _raw_frames(container, stream)
            first = next(raw, None)
            if first is None:  # landed after the last keyframe
                continue
            if first[0].is_corrupt or first[0].pts is None:
                return None  # missing references, or no timestamp to place it: untrusted
            if clock.time_s(first[0], 0) <= start_s + 0.5 / (clock.fps or 25.0):
                return itertools.chain([first], raw)
            raw.close()
    except (av.FFmpegError, _Broken):
        pass  # decoding from the start reports any damage, with the frame where it is
    return None


def _decoded(
    path: Path,
    start_s: float | None,
    end_s: float | None,
    yielded: list[int],
    expected_frames: int | None = None,
) -> Iterator[tuple[int, float, av.VideoFrame]]:
    """``(index, time_s, frame)`` for each frame in ``[start_s, end_s)``; damage raised.

    ``yielded[0]`` is how many frames the caller has passed on, for the error. At a clean end
    of stream the frames are checked against the header (or ``expected_frames``).
    """

    def stop(detail: str, at_end: bool, index: int, time_s: float | None) -> VideoDecodeError:
        reason = "truncated" if at_end else "corrupt"
        return VideoDecodeError(
            path, detail, reason=reason, frames_decoded=yielded[0], index=index, time_s=time_s
        )

    container = open_video(path)
    try:
        stream = container.streams.video[0]
        clock = Clock.of(container, stream)
        raw = _seek(container, stream, clock, start_s) if start_s else None
        counted = raw is None
        if counted and start_s:
            container.close()  # the seek attempts moved the demuxer: start over
            container = open_video(path)
            stream = container.streams.video[0]
        raw = raw or _raw_frames(container, stream)
        index = last_index = -1
        last_time, clean_seen = math.nan, False
        while True:
            try:
                frame, at_end = next(raw, (None, True))
            except MemoryError:
                where = {"frames_decoded": yielded[0], "index": last_index + 1}
                raise out_of_memory_error(path, "decoding", **where) from None
            except _Broken as exc:
                what = "file ends inside a frame" if exc.at_end else "decoder failed"
                detail = f"the {what} ({exc.detail})"
                raise stop(detail, exc.at_end, last_index + 1, clock.after(last_time)) from None
            if frame is None:
                break
            index = index + 1 if counted else clock.index_at(clock.time_s(frame, 0))
            time_s = clock.time_s(frame, index)
            if end_s is not None and time_s >= end_s:
                return
            in_range = start_s is None or time_s >= start_s - 1e-6
            if frame.is_corrupt:
                # Damage before the first clean frame (a stream starting mid-GOP) or before
                # the range is skipped; in the range it ends the iteration.
                if clean_seen and in_range:
                    detail = (
                        "the file ends inside this frame, which decodes only in part"
                        if at_end
                        else "the decoder marked this frame as damaged"
                    )
                    raise stop(detail, at_end, index, time_s)
                continue
            clean_seen, last_index, last_time = True, index, time_s
            if in_range:
                yield index, time_s, frame
        if last_index < 0:
            raise stop("the video stream has no decodable frame", False, 0, None)
        stated = _shortfall(container, stream, clock, last_index, last_time, expected_frames)
        if stated is not None:
            detail = f"the stream ends here but its header states {stated}: it is probably cut"
            raise stop(detail, True, last_index + 1, clock.after(last_time))
    finally:
        container.close()


def _shortfall(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    clock: Clock,
    last_index: int,
    last_time: float,
    expected_frames: int | None,
) -> str | None:
    """What the header states, when a clean end of stream falls short of it; else None."""
    expected = expected_frames or stream.frames
    if expected and last_index + 1 < expected - _SHORTFALL_FRAMES:
        return f"{expected} frames"
    # MPEG-PS/TS estimate their duration from the file itself, so only Matroska's stored one
    # is compared (MP4/MOV/AVI state a frame count).
    if "matroska" in container.format.name and clock.fps and not math.isnan(last_time):
        duration = header_duration_s(container, stream, sole_stream_only=True)
        if duration is not None and last_time + (1 + _SHORTFALL_FRAMES) / clock.fps < duration:
            return f"a duration of {duration:.2f} s"
    return None


def frames_of(
    path: Path,
    start_s: float | None = None,
    end_s: float | None = None,
    stride: int = 1,
    max_frames: int | None = None,
    wanted: set[int] | None = None,
    expected_frames: int | None = None,
) -> Iterator[Frame]:
    """Every ``stride``-th frame in the range, or the ``wanted`` indices, as RGB ``Frame`` s.

    Raises:
        UserError: a time range that holds no frame (at its end, having yielded nothing).
    """
    yielded = [0]
    frames = _decoded(path, start_s, end_s, yielded, expected_frames)
    try:
        for position, (index, time_s, frame) in enumerate(frames):
            if (index not in wanted) if wanted is not None else (position % stride):
                continue
            try:
                rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
            except MemoryError:
                where = {"frames_decoded": yielded[0], "index": index, "time_s": time_s}
                raise out_of_memory_error(path, "decoding", **where) from None
            yield Frame(index, time_s, rgb)
            yielded[0] += 1
            if yielded[0] == max_frames:
                return
    finally:
        frames.close()  # closes the file now, also when the caller stops early
    if not yielded[0] and (start_s is not None or end_s is not None):
        end = "its end" if end_s is None else f"{end_s:g} s"
        raise UserError(f"{path}: no frame between {start_s or 0:g} s and {end}")
