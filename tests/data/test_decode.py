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


def test_the_byte_limit_counts_bytes_not_pixels(tmp_path: Path) -> None:
    from deepfake_lab.data.decode import decoded_bytes

    ramp = np.arange(100 * 100, dtype=np.uint16).reshape(100, 100) * 6
    deep = _png_bytes(Image.fromarray(ramp))  # 16-bit grey: 2 bytes a pixel + 3 for RGB
    flat = _png_bytes(Image.fromarray((ramp // 257).astype(np.uint8)))  # 8-bit: 1 + 3
    assert decoded_bytes("I;16", 100, 100) == 50_000 and decoded_bytes("L", 100, 100) == 40_000
    limit = 45_000  # both are 10 000 pixels; only the 16-bit one is over in bytes
    assert decode_bytes(flat, max_bytes=limit).pixels.shape == (100, 100, 3)
    with pytest.raises(DecodeError) as info:
        decode_bytes(deep, max_bytes=limit)
    assert info.value.reason == "too_large" and "mode I;16 takes 0.1 MB" in info.value.detail
    path = tmp_path / "deep.png"
    path.write_bytes(deep)
    with pytest.raises(DecodeError, match="over the limit of 0.0 MB"):
        decode_image(path, max_bytes=limit)
    # By default the byte limit follows the pixel limit and refuses nothing it allows.
    assert decode_bytes(deep, max_pixels=10_000).pixels.shape == (100, 100, 3)


def test_16_bit_images_are_converted_without_a_float64_copy() -> None:
    import tracemalloc

    height, width = 2048, 512  # 1 MP: a float64 copy alone would be 8 MB
    ramp = (np.arange(height * width, dtype=np.uint32) % 65536).astype(np.uint16)
    data = _png_bytes(Image.fromarray(ramp.reshape(height, width)))
    tracemalloc.start()  # sees NumPy's buffers (not Pillow's own)
    try:
        out = decode_bytes(data).pixels
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (height, width, 3)
    # The uint16 copy (2), the grey (1) and the RGB result (3) bytes a pixel, and a band of
    # rows; the float64 conversion took more than 24.
    assert peak < 10 * height * width, peak
