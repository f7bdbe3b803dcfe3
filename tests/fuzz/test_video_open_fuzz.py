"""Fuzzing the video opener and decoder: any mutation of a small valid MP4/MKV/AVI either
decodes or raises the project's one-line error (a UserError: VideoDecodeError for the file),
in bounded time and memory."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import example, given

from deepfake_lab.errors import UserError
from deepfake_lab.video.decode import iter_evenly_spaced, iter_frames, probe, read_audio
from fuzz_tools import fuzz_settings, memory_cap, mutated


def _clip(path: Path, fmt: str, audio: bool) -> bytes:
    """Six 32x24 frames (MPEG-4 part 2) at 5 fps, with a short AAC or MP3 track."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format=fmt) as out:
        video = out.add_stream("mpeg4", rate=Fraction(5))
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p"
        sound = out.add_stream("aac", rate=8000) if audio else None
        for _ in range(6):
            image = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(video.encode(None))
        if sound is not None:
            pcm = (rng.standard_normal((1, 8000)) * 0.1).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(pcm, format="flt", layout="mono")
            frame.sample_rate = 8000
            for chunk in av.AudioResampler(format="fltp", rate=8000).resample(frame):
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path.read_bytes()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("video-fuzz")


def _seeds() -> list[bytes]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return [
            _clip(Path(tmp) / "a.mp4", "mp4", audio=True),
            _clip(Path(tmp) / "b.mkv", "matroska", audio=False),
            _clip(Path(tmp) / "c.avi", "avi", audio=False),
        ]


SEEDS = _seeds()

CALLS = {
    "probe": probe,
    "iter_frames": lambda p: list(iter_frames(p, max_frames=4)),
    "iter_frames from 0.5 s": lambda p: list(iter_frames(p, start_s=0.5, max_frames=2)),
    "iter_evenly_spaced": lambda p: list(iter_evenly_spaced(p, 3)),
    "read_audio": read_audio,
}


@fuzz_settings(examples=40, deadline_s=10)
@given(data=mutated(SEEDS))
# Found by this test: a tag that is not UTF-8 made PyAV's open raise UnicodeDecodeError.
@example(data=SEEDS[1].replace(b"Lavf", b"\x80avf"))
# And a codec id without a decoder gave a stream without codec context (AttributeError).
@example(data=SEEDS[1].replace(b"V_MPEG4/ISO/ASP", b"V_XPEG4/ISO/ASP"))
def test_a_damaged_video_raises_only_user_errors(folder: Path, data: bytes) -> None:
    path = folder / "clip.mp4"
    path.write_bytes(data)
    for name, call in CALLS.items():
        with memory_cap():
            try:
                call(path)
            except UserError as exc:
                assert "\n" not in str(exc), name
                assert getattr(exc, "reason", None) != "out_of_memory", (name, exc)
