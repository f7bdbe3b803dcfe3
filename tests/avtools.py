"""Test helper: a copy of a clip with its audio shifted (or replaced), built with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from deepfake_lab.video.decode import read_audio


def shifted_copy(
    src: Path, dst: Path, shift_ms: float, audio_from: Path | None = None, rate: int = 16000
) -> Path:
    """Write ``dst`` (Matroska): ``src``'s video packets unchanged, and the audio of
    ``audio_from`` (default ``src``) delayed by ``shift_ms`` (negative: advanced), as 16-bit
    mono PCM. Returns ``dst``."""
    pcm, _ = read_audio(audio_from or src, rate)
    n = int(round(abs(shift_ms) / 1000 * rate))
    pad = np.zeros(n, np.float32)
    pcm = np.concatenate([pad, pcm])[: len(pcm)] if shift_ms > 0 else np.concatenate([pcm[n:], pad])
    s16 = (np.clip(pcm, -1, 1) * 32767).astype(np.int16)
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="matroska") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        aout = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        for pkt in inp.demux(vin):
            if pkt.dts is None:  # the flush packet
                continue
            pkt.stream = vout
            out.mux(pkt)
        for start in range(0, len(s16), 1024):
            frame = av.AudioFrame.from_ndarray(s16[None, start : start + 1024], "s16", "mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(aout.encode(frame))
        out.mux(aout.encode(None))
    return dst


def face_clip(dst: Path, face: np.ndarray, frames: int = 8, gain: float = 1.0) -> Path:
    """Write ``dst`` (MP4, MPEG-4 part 2, 25 fps): ``face`` (H, W, 3) uint8 pasted on a grey
    canvas twice its size, drifting one pixel a frame, its brightness scaled by ``gain``."""
    h, w = face.shape[:2]
    lit = np.clip(face.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 2 * w, 2 * h, "yuv420p"
        stream.options = {"qscale": "2"}
        for t in range(frames):
            canvas = np.full((2 * h, 2 * w, 3), 128, np.uint8)
            canvas[h // 2 : h // 2 + h, w // 2 + t - frames // 2 :][:, :w] = lit
            out.mux(stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")))
        out.mux(stream.encode(None))
    return dst


def damaged_audio_copy(src: Path, dst: Path) -> float:
    """``src`` with its middle audio packet overwritten (the video untouched); returns that
    packet's time."""
    with av.open(str(src)) as c:
        packets = [
            (p.pos, p.size, float(p.pts * p.time_base))
            for p in c.demux(c.streams.audio[0])
            if p.pos is not None and p.pts is not None  # not the flush packet
        ]
    pos, size, t = packets[len(packets) // 2]
    data = bytearray(src.read_bytes())
    data[pos : pos + size] = b"\xff" * 8 + bytes(size - 8)
    dst.write_bytes(bytes(data))
    return t


def yunet_finder():
    """The YuNet face detector on ``../shared``'s model (skips the test without it)."""
    from conftest import shared_path
    from deepfake_lab.faces.detectors import FACE_DETECTORS

    return FACE_DETECTORS.build(
        "yunet", face_model=shared_path("models", "face_detection_yunet.onnx")
    )


def lip_tracker_or_skip():
    """A ``LipTracker``, or skip the test when the 'lips' extra is not installed."""
    import pytest

    from deepfake_lab.video.lips import LipTracker, lips_available

    if not lips_available():
        pytest.skip("the 'lips' extra (dlib + its 68-point model) is not installed")
    return LipTracker()
