"""Streaming video decoding: header values, frame selection, audio, cut and broken files.

The clips are the small ones in ../shared/videos (tests skip without them); cut copies are
written to tmp_path. What FFmpeg does with a cut file depends on the container, and each case
here pins the behaviour documented in deepfake_lab.video.decode.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import shared_path
from deepfake_lab.errors import UserError
from deepfake_lab.video.decode import (
    VIDEO_SUFFIXES,
    VideoDecodeError,
    iter_evenly_spaced,
    iter_frames,
    probe,
    read_audio,
    sample_frame_indices,
)

GRID = "grid_bbaf2n_real.mpg"  # MPEG-1 in MPEG-PS, 360x288, 25 fps, 3 s, audio
ANCHOR = "ffpp_anchor_real.mp4"  # H.264 (4:4:4) in MP4, index at the end, 640x480, no audio
SADTALKER = "sadtalker_art0_synthesized.mp4"  # H.264 + AAC, 256x256


def clip(name: str) -> Path:
    return shared_path("videos", name)


def cut_copy(src: Path, dst: Path, fraction: float = 0.6) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def remux(src: Path, dst: Path, **options: str) -> Path:
    """Copy the streams of ``src`` into another container, without re-encoding."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options=options) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams.video}
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return dst


def decode_all(path: Path, **kwargs) -> tuple[list, VideoDecodeError | None]:
    """The frames yielded, and the error that ended the iteration (None at a clean end)."""
    frames = []
    try:
        for frame in iter_frames(path, **kwargs):
            frames.append(frame)
    except VideoDecodeError as exc:
        return frames, exc
    return frames, None


class SpyContainer:
    """Wraps a PyAV container: counts demuxed packets and records close()."""

    opened: list[SpyContainer] = []

    def __init__(self, real) -> None:
        self._real, self.packets, self.closed = real, 0, False
        SpyContainer.opened.append(self)

    def __getattr__(self, name: str):
        return getattr(self._real, name)

    def demux(self, *args, **kwargs):
        for packet in self._real.demux(*args, **kwargs):
            self.packets += 1
            yield packet

    def close(self) -> None:
        self.closed = True
        self._real.close()


@pytest.fixture
def spy(monkeypatch) -> type[SpyContainer]:
    real_open = av.open
    SpyContainer.opened = []
    monkeypatch.setattr(av, "open", lambda *a, **k: SpyContainer(real_open(*a, **k)))
    return SpyContainer


# --- header -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, size, n_frames, duration, codec, audio_rate",
    [
        (GRID, (360, 288), None, 2.98, "mpeg1video", 44100),
        (ANCHOR, (640, 480), 396, 15.84, "h264", None),
        (SADTALKER, (256, 256), 227, 9.08, "h264", 16000),
    ],
)
def test_probe(name, size, n_frames, duration, codec, audio_rate) -> None:
    info = probe(clip(name))
    assert (info.width, info.height) == size
    assert info.fps == pytest.approx(25.0)
    assert info.n_frames == n_frames
    assert info.duration_s == pytest.approx(duration, abs=0.01)
    assert info.codec == codec
    assert info.has_audio == (audio_rate is not None)
    assert info.audio_rate == audio_rate
    assert Path(name).suffix in VIDEO_SUFFIXES


# --- frame selection ----------------------------------------------------------------------


def test_stride_gives_every_nth_frame_with_its_time() -> None:
    frames = list(iter_frames(clip(GRID), stride=5))
    assert [f.index for f in frames] == list(range(0, 75, 5))
    for f in frames:
        assert f.time_s == pytest.approx(f.index / 25, abs=1e-6)
        assert f.image.shape == (288, 360, 3) and f.image.dtype == np.uint8
        assert f.image.flags.c_contiguous


@pytest.mark.parametrize("start", [0.3, 1.0, 2.5])
def test_start_end_window(start: float) -> None:
    frames = list(iter_frames(clip(GRID), start_s=start, end_s=start + 0.4, stride=2))
    assert start <= frames[0].time_s < start + 1 / 25
    assert all(f.time_s < start + 0.4 for f in frames)
    assert [f.index for f in frames] == list(range(frames[0].index, frames[0].index + 10, 2))
    assert all(f.index == round(f.time_s * 25) for f in frames)


def test_seek_gives_the_same_pixels_as_decoding_from_the_start() -> None:
    # This clip's keyframe at 10 s decodes green unless the decoder saw the first packet.
    sequential = list(iter_frames(clip(ANCHOR), stride=300, max_frames=2))[1]
    seeked = next(iter(iter_frames(clip(ANCHOR), start_s=12.0)))
    assert (sequential.index, seeked.index) == (300, 300)
    assert seeked.time_s == pytest.approx(12.0)
    np.testing.assert_array_equal(seeked.image, sequential.image)


def test_max_frames_stops_decoding_and_closes_the_file(spy) -> None:
    frames = list(iter_frames(clip(ANCHOR), max_frames=3))
    assert [f.index for f in frames] == [0, 1, 2]
    assert all(c.closed for c in spy.opened)
    assert spy.opened[-1].packets < 30  # of 396: the decoder's delay, not the whole clip


def test_closing_the_iterator_early_closes_the_file(spy) -> None:
    frames = iter_frames(clip(ANCHOR))
    # The file is checked at call, but only held open while iterating.
    assert all(c.closed for c in spy.opened)
    assert next(frames).index == 0
    decoding = spy.opened[-1]
    assert not decoding.closed
    frames.close()
    assert decoding.closed and decoding.packets < 30


def test_bad_arguments_are_user_errors() -> None:
    for kwargs in (
        {"stride": 0},
        {"max_frames": 0},
        {"start_s": 2.0, "end_s": 1.0},
        {"start_s": 1.0, "end_s": 1.0},
        {"start_s": -1.0},
    ):
        with pytest.raises(UserError):
            iter_frames(clip(GRID), **kwargs)


# --- evenly spaced ------------------------------------------------------------------------


def test_sample_frame_indices() -> None:
    assert sample_frame_indices(75, 8) == [4, 14, 23, 32, 42, 51, 60, 70]
    assert sample_frame_indices(100, 1) == [50]
    assert sample_frame_indices(5, 32) == [0, 1, 2, 3, 4]
    assert sample_frame_indices(0, 4) == []
    for n in (32, 33, 75, 396, 1001):
        idx = sample_frame_indices(n, 32)
        assert len(set(idx)) == 32 and idx == sorted(idx) and 0 <= idx[0] and idx[-1] < n
    with pytest.raises(UserError):
        sample_frame_indices(10, 0)


@pytest.mark.parametrize("name, n_frames", [(GRID, 75), (ANCHOR, 396)])
def test_evenly_spaced_frames_span_the_clip(name: str, n_frames: int) -> None:
    # The MPEG-PS clip states no frame count: its packets are counted first.
    frames = list(iter_evenly_spaced(clip(name), k=8))
    indices = [f.index for f in frames]
    assert indices == sample_frame_indices(n_frames, 8)
    assert indices[0] < n_frames / 8 and indices[-1] >= n_frames * 7 / 8
    assert all(f.time_s == pytest.approx(f.index / 25, abs=1e-6) for f in frames)


# --- audio --------------------------------------------------------------------------------


def test_read_audio_is_mono_float_at_the_rate() -> None:
    samples, rate = read_audio(clip(GRID))
    assert rate == 16000
    assert samples.ndim == 1 and samples.dtype == np.float32
    assert samples.size == pytest.approx(2.98 * 16000, rel=0.02)
    assert -1.0 <= samples.min() and samples.max() <= 1.0
    assert np.sqrt(np.mean(samples**2)) > 0.01


def test_read_audio_window_lines_up_with_the_whole_track() -> None:
    whole, _ = read_audio(clip(SADTALKER), rate=8000)
    window, _ = read_audio(clip(SADTALKER), rate=8000, start_s=1.0, end_s=2.0)
    assert window.size == 8000
    assert np.corrcoef(window, whole[8000:16000])[0, 1] > 0.99


def test_read_audio_without_a_track_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no audio track") as info:
        read_audio(clip(ANCHOR))
    assert "\n" not in str(info.value)


# --- cut and broken files -----------------------------------------------------------------


def test_cut_mpeg_ps_yields_the_frames_before_the_cut_then_says_where(tmp_path: Path) -> None:
    # MPEG-PS decodes up to the cut; FFmpeg marks the half-received last frame corrupt.
    cut = cut_copy(clip(GRID), tmp_path / "cut.mpg")
    frames, error = decode_all(cut)
    assert 40 <= len(frames) < 75
    assert [f.index for f in frames] == list(range(len(frames)))
    assert error is not None and error.reason == "truncated"
    assert error.frames_decoded == len(frames) and error.index == len(frames)
    assert error.path == cut
    message = str(error)
    assert str(cut) in message and f"frame {len(frames)}" in message and "\n" not in message


def test_cut_mpeg_ps_with_stride_counts_frames_yielded(tmp_path: Path) -> None:
    cut = cut_copy(clip(GRID), tmp_path / "cut.mpg")
    frames, error = decode_all(cut, stride=10)
    assert error is not None and error.frames_decoded == len(frames) == 5
    assert error.index == 46  # the stream position of the damaged frame


def test_cut_mp4_with_its_index_at_the_end_fails_at_open(tmp_path: Path) -> None:
    cut = cut_copy(clip(ANCHOR), tmp_path / "cut.mp4")
    for call in (probe, iter_frames, iter_evenly_spaced):
        with pytest.raises(VideoDecodeError) as info:
            call(cut)
        assert info.value.reason == "truncated" and info.value.frames_decoded == 0
        assert "cut short" in str(info.value) and "'moov'" in str(info.value)


def test_cut_faststart_mp4_fails_on_the_partial_frame(tmp_path: Path) -> None:
    whole = remux(clip(ANCHOR), tmp_path / "fast.mp4", movflags="faststart")
    assert len(list(iter_frames(whole, stride=50))) == 8  # the remux itself is fine
    frames, error = decode_all(cut_copy(whole, tmp_path / "cut.mp4"), stride=50)
    assert error is not None and error.reason == "truncated"
    assert error.frames_decoded == len(frames) >= 3
    assert 150 <= error.index < 396


def test_cut_mkv_ends_cleanly_and_is_caught_by_its_header_duration(tmp_path: Path) -> None:
    whole = remux(clip(ANCHOR), tmp_path / "whole.mkv")
    assert probe(whole).n_frames is None
    assert len(list(iter_frames(whole, stride=50))) == 8
    frames, error = decode_all(cut_copy(whole, tmp_path / "cut.mkv"), stride=50)
    assert error is not None and error.reason == "truncated"
    assert "15.84 s" in str(error) and error.frames_decoded == len(frames) >= 3


def test_not_a_video(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video, just text\n" * 50)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    image = shared_path("data", "ffhq-128", "00000.png")  # FFmpeg reads it as a 1-frame video
    for path in (text, empty, image):
        with pytest.raises(VideoDecodeError) as info:
            iter_frames(path)
        assert info.value.reason == "not_video" and str(path) in str(info.value)
        assert "\n" not in str(info.value)


def test_missing_path_is_a_one_line_user_error(tmp_path: Path) -> None:
    for call in (probe, iter_frames, iter_evenly_spaced, read_audio):
        with pytest.raises(UserError, match="video not found") as info:
            call(tmp_path / "nope.mp4")
        assert not isinstance(info.value, VideoDecodeError) and "\n" not in str(info.value)


# --- containers ---------------------------------------------------------------------------


def transcode(src: Path, dst: Path, vcodec: str, acodec: str) -> Path:
    """Re-encode ``src`` (video and audio) into ``dst``; the container from its suffix."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        vout = out.add_stream(vcodec, rate=25)
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        aout = out.add_stream(acodec, rate=48000 if acodec == "libopus" else 44100)
        aout.layout = "mono"
        n = 0
        for frame in inp.decode(vin, ain):
            if isinstance(frame, av.VideoFrame):
                frame = frame.reformat(format="yuv420p")
                frame.pts, frame.time_base, n = n, Fraction(1, 25), n + 1
                out.mux(vout.encode(frame))
            else:
                frame.pts = None  # the encoder counts samples
                out.mux(aout.encode(frame))
        out.mux(vout.encode(None))
        out.mux(aout.encode(None))
    return dst


@pytest.mark.parametrize(
    "suffix, vcodec, acodec",
    [(".mov", "libx264", "aac"), (".avi", "mpeg4", "mp3"), (".webm", "libvpx-vp9", "libopus")],
)
def test_mov_avi_and_webm_decode_like_the_original(tmp_path, suffix, vcodec, acodec) -> None:
    """The issue's containers beside MP4 and MPG: same frames (up to re-encoding), times
    and audio as the source clip."""
    assert suffix in VIDEO_SUFFIXES
    src = clip(GRID)
    dst = transcode(src, tmp_path / f"grid{suffix}", vcodec, acodec)
    info = probe(dst)
    assert (info.width, info.height) == (360, 288) and info.has_audio
    original = [f.image.astype(np.float32) for f in iter_frames(src)]
    frames = list(iter_frames(dst))
    assert len(frames) == len(original) == 75
    assert [f.index for f in frames] == list(range(75))
    assert frames[-1].time_s == pytest.approx(74 / 25, abs=0.02)
    err = [np.abs(f.image - o).mean() for f, o in zip(frames, original, strict=True)]
    assert max(err) < 6.0, max(err)  # lossy re-encoding, not a different picture
    pcm, rate = read_audio(dst, 16000)
    ref, _ = read_audio(src, 16000)
    assert rate == 16000 and abs(len(pcm) - len(ref)) < 0.1 * rate


def test_a_start_past_the_end_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"at or past the end of the video \(2\.98 s\)"):
        iter_frames(clip(GRID), start_s=100.0)


@pytest.mark.parametrize(
    "kwargs, n",
    [({}, 75), ({"stride": 2}, 38), ({"start_s": 1.0, "end_s": 2.0}, 25), ({"max_frames": 9}, 9)],
)
def test_frames_expected_matches_what_is_decoded(kwargs, n) -> None:
    from deepfake_lab.video.decode import frames_expected

    assert frames_expected(probe(clip(GRID)), **kwargs) == n
    assert len(list(iter_frames(clip(GRID), **kwargs))) == n


def test_an_unaligned_start_counts_like_decoding_and_an_empty_range_is_an_error() -> None:
    from deepfake_lab.video.decode import frames_expected

    info = probe(clip(SADTALKER))
    for kwargs in ({"start_s": 1.01}, {"start_s": 0.001}, {"start_s": 0.5, "stride": 5}):
        assert frames_expected(info, **kwargs) == len(list(iter_frames(clip(SADTALKER), **kwargs)))
    with pytest.raises(UserError, match=r"no frame between 0\.5 s and 0\.52 s"):
        list(iter_frames(clip(SADTALKER), start_s=0.5, end_s=0.52))
    for bad in (float("inf"), float("nan"), -1.0):
        with pytest.raises(UserError, match="the start must be a number of seconds"):
            iter_frames(clip(GRID), start_s=bad)


def test_damaged_audio_raises_or_keeps_what_decoded_before(tmp_path: Path) -> None:
    from avtools import damaged_audio_copy
    from deepfake_lab.video.decode import read_audio_until_damage

    broken = tmp_path / "broken.mp4"
    t = damaged_audio_copy(clip(SADTALKER), broken)
    with pytest.raises(VideoDecodeError, match="audio decoding failed near"):
        read_audio(broken)
    pcm, rate, error = read_audio_until_damage(broken)
    whole, _ = read_audio(clip(SADTALKER))
    assert error is not None and abs(len(pcm) / rate - t) < 0.1
    assert np.array_equal(pcm[: rate * 4], whole[: rate * 4])  # the good part is unchanged
    # Damage before the range read does not matter.
    after, _ = read_audio(broken, rate, start_s=t + 0.5)
    assert np.array_equal(after, read_audio(clip(SADTALKER), rate, start_s=t + 0.5)[0])
