"""Streaming video decoding with PyAV (FFmpeg): RGB frames one at a time, audio as mono PCM.

Nothing here holds a whole video: :func:`iter_frames` and :func:`iter_evenly_spaced` decode
one frame at a time and convert to RGB only the frames they keep. They check their arguments
and open the file once when called, so a bad path fails there rather than at the first
``next()``; the generator then holds the file open only from its first ``next()`` until it
ends or is closed.

Clock: every time (``Frame.time_s``, ``start_s``/``end_s``, :func:`read_audio`'s samples) is
in seconds from the container's start, so that frames and audio samples line up. ``index``
is the frame's position in the video stream from 0: counted when decoding from the start,
``round(time * fps)`` after a seek (exact for constant frame rate, approximate otherwise).

Errors are one line. A missing path or a bad argument raises ``UserError``; anything wrong with
the file raises :class:`VideoDecodeError` (a ``UserError``), whose ``reason`` is:

* ``not_video``: FFmpeg cannot open it, it has no video stream, or it is not a video
  container at all: a single image, a playlist, a concat script (only the demuxers of
  ``container.VIDEO_DEMUXERS`` and local files are ever opened; see :mod:`.container`).
* ``truncated``: the file is cut short. What FFmpeg does depends on the container: an MP4/MOV
  with its index ('moov' box) at the end, as recorders write it, cannot be opened at all
  (raised at open, with the box that runs past the end); MPEG-PS/TS (``.mpg``, ``.ts``) decode
  up to the cut and mark the half-received last frame corrupt; an MP4 with its index first
  (faststart) fails on the partial sample; MKV/WebM end cleanly, and are caught by the
  duration in their header, as an MP4/AVI that ended cleanly would be by its frame count.
* ``corrupt``: the decoder failed, or marked a frame damaged, in the middle of the stream.
* ``out_of_memory``: memory ran out while opening or decoding; it says nothing about the
  file (transient: a dataset run tries it again later).

The error replaces the first damaged frame: the frames yielded before it are good, and it says
that frame's index and time and how many frames were yielded (``frames_decoded``). A cut
MPEG-PS/TS that falls exactly between frames cannot be detected: those formats state no frame
count, and FFmpeg estimates their duration from the cut file itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from deepfake_lab.errors import UserError
from deepfake_lab.video.container import VideoDecodeError, ffmpeg_detail, open_video
from deepfake_lab.video.demux import (
    Clock,
    Frame,
    check_range,
    count_packets,
    frames_of,
    header_duration_s,
    video_span_s,
)

__all__ = [
    "VIDEO_SUFFIXES",
    "check_range",
    "Frame",
    "VideoDecodeError",
    "VideoInfo",
    "frames_expected",
    "iter_evenly_spaced",
    "iter_frames",
    "probe",
    "read_audio",
    "read_audio_until_damage",
    "sample_frame_indices",
]

#: File suffixes (lower case) that are treated as videos when listing a folder.
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mpg", ".mpeg", ".webm", ".mkv")


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, from its header (nothing is decoded).

    Attributes:
        fps: average frame rate; 0.0 when the file states none.
        duration_s: the video stream's length (else the file's) in seconds; None if unknown.
        n_frames: frame count as the container states it; None where it states none
            (MPEG-PS/TS, MKV, WebM).
        codec: FFmpeg's codec name (``"h264"``, ``"mpeg1video"``, ...).
        audio_rate: sample rate of the first audio track; None without audio.
        start_s: the video stream's first timestamp, in seconds from the container start
            (the clock of ``Frame.time_s``; 0 for most files, not for some MPEG-TS).
    """

    path: Path
    width: int
    height: int
    fps: float
    duration_s: float | None
    n_frames: int | None
    codec: str
    has_audio: bool
    audio_rate: int | None
    start_s: float = 0.0


def probe(path: Path | str) -> VideoInfo:
    """Read a video's header. Raises ``UserError`` / :class:`VideoDecodeError` as opening does."""
    path = Path(path)
    container = open_video(path)
    try:
        stream = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        # An audio codec FFmpeg cannot decode has no codec context: no usable audio.
        audio_codec = audio.codec_context if audio is not None else None
        return VideoInfo(
            path=path,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=Clock.of(container, stream).fps,
            duration_s=header_duration_s(container, stream, sole_stream_only=False),
            n_frames=stream.frames or None,
            codec=stream.codec_context.name,
            has_audio=audio_codec is not None,
            audio_rate=audio_codec.sample_rate if audio_codec is not None else None,
            start_s=video_span_s(container, stream)[0],
        )
    finally:
        container.close()


def iter_frames(
    path: Path | str,
    stride: int = 1,
    start_s: float | None = None,
    end_s: float | None = None,
    max_frames: int | None = None,
) -> Iterator[Frame]:
    """Decode every ``stride``-th frame in ``[start_s, end_s)``, at most ``max_frames`` of them.

    The first frame yielded is the first at or after ``start_s`` (found by seeking to a
    keyframe before it, then decoding forward); then every ``stride``-th frame after it.

    Raises:
        UserError: a bad argument or a missing path (at call).
        VideoDecodeError: at call when the file cannot be opened; while iterating, after the
            good frames, when the stream is damaged or cut short.
    """
    if stride < 1:
        raise UserError(f"stride must be 1 or more, got {stride}")
    if max_frames is not None and max_frames < 1:
        raise UserError(f"max_frames must be 1 or more, got {max_frames}")
    check_range(start_s, end_s)
    path = Path(path)
    container = open_video(path)  # fail now on a bad file; the generator reopens it
    try:
        _, end = video_span_s(container, container.streams.video[0])
    finally:
        container.close()
    if start_s is not None and end is not None and start_s >= end:
        raise UserError(
            f"{path}: the start, {start_s:g} s, is at or past the end of the video ({end:.2f} s)"
        )
    return frames_of(path, start_s, end_s, stride=stride, max_frames=max_frames)


def frames_expected(
    info: VideoInfo,
    stride: int = 1,
    start_s: float | None = None,
    end_s: float | None = None,
    max_frames: int | None = None,
) -> int | None:
    """About how many frames :func:`iter_frames` will yield, from the header (for a progress
    bar's total: the header can be off by a frame or two); None when it states too little."""
    n = info.n_frames
    if n is None and info.duration_s and info.fps:
        n = math.ceil(info.duration_s * info.fps - 1e-6)  # a partial last frame still shows
    finite = all(t is None or math.isfinite(t) for t in (start_s, end_s))
    if n is None or not info.fps or not finite:
        return max_frames

    def frames_before(t: float) -> int:
        # Frame k is at start_s + k / fps (video clock); those before t, to the frame.
        return min(n, max(0, math.ceil((t - info.start_s) * info.fps - 1e-6)))

    first = frames_before(start_s or 0.0)
    last = n if end_s is None else frames_before(end_s)
    count = max(0, -(-(last - first) // stride))
    return count if max_frames is None else min(count, max_frames)


def sample_frame_indices(n_frames: int, k: int) -> list[int]:
    """``k`` evenly spaced indices out of ``n_frames``: the centres of ``k`` equal spans.

    ``(2i + 1) * n_frames // (2k)``: distinct and increasing (each span is at least a frame
    wide), the middle frame for ``k = 1``, and the very first and last frames (fades, black)
    are avoided. All of ``range(n_frames)`` when ``k >= n_frames``.
    """
    if k < 1:
        raise UserError(f"the number of frames to sample must be 1 or more, got {k}")
    if n_frames <= k:
        return list(range(max(n_frames, 0)))
    return [(2 * i + 1) * n_frames // (2 * k) for i in range(k)]


def iter_evenly_spaced(path: Path | str, k: int = 32) -> Iterator[Frame]:
    """Yield the :func:`sample_frame_indices` ``(n_frames, k)`` frames in one decoding pass.

    ``n_frames`` is the container's frame count. Where it states none (MPEG-PS/TS, MKV, WebM),
    the video packets are counted first by demuxing alone: this reads the file but decodes
    nothing, far cheaper than decoding twice, and one packet is one frame for the codecs these
    containers carry. Decoding stops after the last wanted frame, so damage after it goes
    unseen, and a cut MKV is sampled over the frames it still holds.

    Raises:
        UserError, VideoDecodeError: as :func:`iter_frames`.
    """
    path = Path(path)
    container = open_video(path)
    try:
        n_frames = container.streams.video[0].frames
    finally:
        container.close()
    n_frames = n_frames or count_packets(path)
    wanted = sample_frame_indices(n_frames, k)
    # With nothing wanted (no packet counted), decoding all of it reports what is wrong.
    return frames_of(path, wanted=set(wanted), max_frames=len(wanted), expected_frames=n_frames)


def read_audio(
    path: Path | str, rate: int = 16000, start_s: float | None = None, end_s: float | None = None
) -> tuple[np.ndarray, int]:
    """The first audio track in ``[start_s, end_s)``, as mono float PCM at ``rate`` Hz.

    Channels are averaged: FFmpeg's own stereo-to-mono mix adds them at -3 dB, which can exceed
    1; the few samples a float decoder overshoots are clipped. Sample ``i`` is at time
    ``(start_s or 0) + i / rate``, so a track that starts after the video gets leading silence.
    Audio is decoded from the start (it decodes at hundreds of times real time), not seeked.

    Returns:
        ``(samples, rate)``: samples ``(N,)`` float32 in [-1, 1].

    Raises:
        UserError: a bad argument, a missing path, or a file without an audio track.
        VideoDecodeError: the file cannot be opened, or its audio fails to decode.
    """
    pcm, rate, error = read_audio_until_damage(path, rate, start_s, end_s)
    if error is not None:
        raise error
    return pcm, rate


def read_audio_until_damage(
    path: Path | str, rate: int = 16000, start_s: float | None = None, end_s: float | None = None
) -> tuple[np.ndarray, int, VideoDecodeError | None]:
    """:func:`read_audio` that keeps what decoded before damage: ``(samples, rate, error)``,
    ``error`` None when the track decoded to its end (or to ``end_s``)."""
    if rate < 1:
        raise UserError(f"the audio sample rate must be 1 Hz or more, got {rate}")
    check_range(start_s, end_s)
    path = Path(path)
    container = open_video(path, need_video=False)
    start, first_s, t, error = start_s or 0.0, None, 0.0, None
    chunks: list[np.ndarray] = []
    try:
        if not container.streams.audio:
            raise UserError(f"{path}: the file has no audio track")
        origin_s = (container.start_time or 0) / 1e6
        resampler = av.AudioResampler(format="fltp", rate=rate)  # keeps the channel layout
        for frame in _audio_frames(container, origin_s, start):
            if frame.pts is not None:
                t = float(frame.pts * frame.time_base) - origin_s
            if end_s is not None and t >= end_s:
                break
            if t + frame.samples / frame.sample_rate <= start:
                continue  # wholly before the range: not worth resampling
            first_s = t if first_s is None else first_s
            chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray() for f in resampler.resample(None))
    except av.FFmpegError as exc:
        detail = f"audio decoding failed near {t:.2f} s ({ffmpeg_detail(exc)})"
        error = VideoDecodeError(path, detail, reason="corrupt")
    finally:
        container.close()

    mono = np.concatenate(chunks, axis=1).mean(axis=0) if chunks else np.zeros(0, np.float32)
    lead = round(((first_s if first_s is not None else start) - start) * rate)
    mono = np.concatenate([np.zeros(lead, mono.dtype), mono]) if lead > 0 else mono[-lead:]
    if end_s is not None:
        mono = mono[: round((end_s - start) * rate)]
    return np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False), rate, error


def _audio_frames(
    container: av.container.InputContainer, origin_s: float, start_s: float
) -> Iterator[av.AudioFrame]:
    """The first audio track's frames, packet by packet: a packet that fails to decode
    wholly before ``start_s`` is skipped (damage there does not matter); any later failure
    raises ``av.FFmpegError``."""
    for packet in container.demux(container.streams.audio[0]):
        try:
            yield from packet.decode()
        except av.FFmpegError:
            if packet.pts is not None and packet.duration and packet.time_base:
                after = float((packet.pts + packet.duration) * packet.time_base)
                if after - origin_s <= start_s:
                    continue
            raise
