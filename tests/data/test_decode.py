"""Safe decoding: every kind of bad file gets its reason, every odd mode becomes 8-bit RGB."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_lab.data.decode import DecodeError, decode_bytes, decode_image


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _header_only_png(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` but holds no pixel data (a bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _reason(data: bytes, **kw) -> str:
    with pytest.raises(DecodeError) as info:
        decode_bytes(data, **kw)
    return info.value.reason


def test_bad_files_get_their_reason(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    buf = io.BytesIO()
    rgb.save(buf, "JPEG")
    jpeg = buf.getvalue()
    png = _png_bytes(rgb)
    broken = bytearray(png)
    broken[len(broken) // 2 : len(broken) // 2 + 64] = bytes(64)

    assert _reason(b"") == "empty_file"
    assert _reason(b"just some text, not an image\n") == "not_image"
    assert _reason(jpeg[: len(jpeg) // 2]) == "truncated"
    assert _reason(png[: len(png) // 2]) == "truncated"
    assert _reason(bytes(broken)) == "corrupt"
    gif = io.BytesIO()
    rgb.save(gif, "GIF")  # a real image, but not a format we let through
    assert _reason(gif.getvalue()) == "not_image"

    empty = tmp_path / "empty.jpg"
    empty.touch()
    with pytest.raises(DecodeError, match="empty_file"):
        decode_image(empty)


def test_pixel_limit_is_checked_on_the_header_before_decoding() -> None:
    # The file holds no pixel data at all: a "truncated" verdict would mean it was decoded.
    with pytest.raises(DecodeError) as info:
        decode_bytes(_header_only_png(5000, 5000), max_pixels=1_000_000)
    assert info.value.reason == "too_large"
    assert "5000x5000" in info.value.detail and "--max-pixels" in info.value.detail
    # Over Pillow's own bomb limit (2 x 89 MP) with a higher --max-pixels: Pillow's
    # DecompressionBombError is caught and reported the same way.
    assert _reason(_header_only_png(20000, 20000), max_pixels=10**12) == "too_large"


def test_file_far_bigger_than_the_pixel_limit_is_not_read(tmp_path: Path) -> None:
    big = tmp_path / "video.jpg"
    big.write_bytes(b"\0" * (17 << 20))  # 17 MB
    with pytest.raises(DecodeError) as info:
        decode_image(big, max_pixels=100)
    assert info.value.reason == "too_large"


def test_modes_become_8bit_rgb() -> None:
    gray = Image.fromarray(np.full((8, 8), 77, dtype=np.uint8))
    out = decode_bytes(_png_bytes(gray)).pixels
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8 and np.all(out == 77)

    deep = Image.fromarray(np.full((8, 8), 65535 // 2, dtype=np.uint16))
    decoded = decode_bytes(_png_bytes(deep))
    assert decoded.source_mode.startswith("I")
    # Scaled, not clipped: half of 16-bit full scale is half of 8-bit full scale.
    assert np.all(np.abs(decoded.pixels.astype(int) - 127) <= 1)

    pal = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert("P")
    pal.putpalette([v for i in range(256) for v in (i, 0, 255 - i)])
    out = decode_bytes(_png_bytes(pal)).pixels
    assert out.shape == (8, 8, 3) and tuple(out[0, 5]) == (5, 0, 250)


def test_transparency_is_composited_on_white_or_black() -> None:
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red, but transparent except the centre
    rgba[2:6, 2:6, 3] = 255
    data = _png_bytes(Image.fromarray(rgba, "RGBA"))
    white = decode_bytes(data).pixels
    assert tuple(white[0, 0]) == (255, 255, 255) and tuple(white[4, 4]) == (255, 0, 0)
    black = decode_bytes(data, background="black").pixels
    assert tuple(black[0, 0]) == (0, 0, 0)


def test_exif_orientation_is_applied() -> None:
    # Displayed image: 20 wide, 40 tall, red top half, blue bottom half. Orientation 6
    # ("rotate 90 clockwise to display") means the stored pixels are that turned 90 ccw.
    shown = np.zeros((40, 20, 3), dtype=np.uint8)
    shown[:20] = (255, 0, 0)
    shown[20:] = (0, 0, 255)
    stored = Image.fromarray(shown).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    decoded = decode_bytes(buf.getvalue())
    assert decoded.exif_transposed
    assert decoded.pixels.shape == (40, 20, 3)
    top, bottom = decoded.pixels[5, 10].astype(int), decoded.pixels[35, 10].astype(int)
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60
