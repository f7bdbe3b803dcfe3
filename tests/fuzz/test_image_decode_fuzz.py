"""Fuzzing the image decoder: any mutation of a valid PNG/JPEG/WebP/BMP decodes to RGB or
raises DecodeError, within the pixel limit's memory and a bounded time."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from hypothesis import example, given
from PIL import Image

from deepfake_lab.data.decode import DecodeError, decode_bytes
from fuzz_tools import fuzz_settings, memory_cap, mutated

MAX_PIXELS = 1 << 20  # 1 MP: a header claiming more is refused before any pixel is decoded


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 255, (12, 16, 4), dtype=np.uint8), "RGBA")
    deep = Image.fromarray(rng.integers(0, 65535, (12, 16), dtype=np.uint16))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the EXIF path runs
    return [
        _encode(rgb, "PNG"),
        _encode(rgba, "PNG"),
        _encode(deep, "PNG"),
        _encode(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=8), "PNG"),
        _encode(rgb, "JPEG", quality=80, exif=exif.tobytes()),
        _encode(rgb, "JPEG", quality=80, progressive=True),
        _encode(rgb, "WEBP", quality=80),
        _encode(rgba, "WEBP", lossless=True),
        _encode(rgb, "BMP"),
    ]


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` over one row of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    idat = zlib.compress(b"\0" + b"\0" * 3 * min(width, 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


SEEDS = _seeds()


@fuzz_settings(examples=60, deadline_s=5)
@given(data=mutated(SEEDS))
@example(data=_png_claiming(65535, 65535))  # a decompression bomb's header
@example(data=_png_claiming(1, 1 << 30))
@example(data=b"")
def test_decode_bytes_raises_only_decode_error(data: bytes) -> None:
    with memory_cap():
        try:
            decoded = decode_bytes(data, max_pixels=MAX_PIXELS)
        except DecodeError as exc:
            # Running out under the cap would mean a header got past the limits.
            assert exc.reason != "out_of_memory", exc
            assert exc.reason and exc.detail
            return
    height, width, channels = decoded.pixels.shape
    assert channels == 3 and decoded.pixels.dtype == np.uint8
    assert 0 < height * width <= MAX_PIXELS
