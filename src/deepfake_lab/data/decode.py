"""Safe image decoding: any JPEG/PNG/WebP/BMP file in, 8-bit RGB array out, or a reason why not.

Every way a file can be unusable is turned into a :class:`DecodeError` with a short machine
reason code and a human detail, so that a dataset run can record it and carry on:

=================  ========================================================================
reason             meaning
=================  ========================================================================
``empty_file``     the file has zero bytes
``unreadable``     the file cannot be read (permissions, I/O error) *
``not_image``      not a JPEG/PNG/WebP/BMP file (e.g. a text file renamed ``.jpg``)
``too_large``      width x height over the pixel limit (decompression-bomb guard), or the bytes
                   decoding would hold over the byte limit (:func:`decoded_bytes`: a 16-bit or
                   32-bit image costs more a pixel than an 8-bit one), both read from the
                   header before any pixel is decoded; or a file bigger than any image within
                   the limit can be (never read into memory)
``truncated``      the file ends before the image data does
``corrupt``        the header parses but the image data does not decode
``out_of_memory``  decoding ran out of memory *
=================  ========================================================================

The reasons marked * are *transient* (:attr:`DecodeError.transient`,
:data:`TRANSIENT_REASONS`): they say how the machine was at the time, not what the file is
(a permission can change without the file's mtime changing, memory may be free later), so
nothing may record them as a verdict on the file. Every other reason depends only on the
file's bytes and the limits.

Conversions, in order: EXIF orientation is applied (``ImageOps.exif_transpose``); an
embedded ICC profile is converted to sRGB; 16-bit and 32-bit integer images are scaled to 8 bits
(``value / 257``, so 65535 -> 255; in integer arithmetic, or float64 a band of rows at
a time for float images, so the conversion never holds a float64 copy of the whole image);
images with transparency are composited onto a **white**
background by default (``background="black"`` is available); grayscale, palette, CMYK and the
rest are converted to RGB.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageCms, ImageMode, ImageOps, UnidentifiedImageError

from deepfake_lab.errors import UserError

#: File suffixes (lower case) that are read as images; everything else is ignored.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})

#: Default pixel limit (width x height): 100 MP, above any common camera. A 100 MP RGB image
#: is 300 MB once decoded.
DEFAULT_MAX_PIXELS = 100_000_000

#: The default byte limit is this many bytes a pixel times the pixel limit: enough for every
#: mode (at most 4 bytes a pixel as decoded, plus 3 for the RGB result), so by default only
#: the pixel limit refuses; a caller short of memory passes a lower ``max_bytes``.
DEFAULT_BYTES_PER_PIXEL = 7

# Rows converted at a time from 16/32-bit to 8-bit: bounds the temporaries.
_ROWS = 256

# Only these decoders may run, whatever the suffix says: a GIF or TIFF renamed ``.jpg`` is
# refused instead of reaching a rarely used decoder.
_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")

_EXIF_ORIENTATION = 0x0112

_SRGB = ImageCms.createProfile("sRGB")

# Room for EXIF, ICC and XMP blocks on top of the pixel data in the file-size guard.
_METADATA_ALLOWANCE = 16 << 20

#: Reasons that describe the moment, not the file: a later attempt may succeed.
TRANSIENT_REASONS = frozenset({"unreadable", "out_of_memory"})


class DecodeError(Exception):
    """An image that cannot be used.

    Attributes:
        reason: short machine code, one of the table in the module docstring.
        detail: one human sentence saying what was found.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    @property
    def transient(self) -> bool:
        """Whether the failure may go away by itself (:data:`TRANSIENT_REASONS`): never a
        verdict on the file to remember."""
        return self.reason in TRANSIENT_REASONS


def out_of_memory(what: str) -> DecodeError:
    """The transient ``out_of_memory`` error for a step (``"decoding"``, ...) that raised
    MemoryError."""
    return DecodeError("out_of_memory", f"ran out of memory while {what} it; try it again later")


@dataclass(frozen=True)
class DecodedImage:
    """A decoded image.

    Attributes:
        pixels: ``(H, W, 3)`` uint8 RGB, orientation already applied.
        source_mode: the PIL mode of the file (``"RGB"``, ``"I;16"``, ``"P"``, ...).
        source_format: the PIL format name (``"JPEG"``, ``"PNG"``, ...).
        exif_transposed: True when an EXIF orientation tag changed the pixels.
    """

    pixels: np.ndarray
    source_mode: str
    source_format: str
    exif_transposed: bool


def read_image_file(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """The bytes of an image file, after the checks that need no decoding.

    Raises:
        DecodeError: ``empty_file``, ``unreadable`` (also: not a regular file, e.g. a named
            pipe or a link that loops), or ``too_large`` when the file is bigger
            than any image within ``max_pixels`` could be (4 bytes a pixel, as in an
            uncompressed 32-bit BMP, plus room for metadata), so that a multi-GB file
            named ``.jpg`` is never read into memory.
    """
    try:
        info = Path(path).stat()
        if not stat.S_ISREG(info.st_mode):  # a named pipe would block the read forever
            raise DecodeError("unreadable", not_a_file(path) or "not a regular file")
        nbytes = info.st_size
        if nbytes == 0:
            raise DecodeError("empty_file", "the file has 0 bytes")
        if nbytes > 4 * max_pixels + _METADATA_ALLOWANCE:
            raise DecodeError(
                "too_large",
                f"the file is {nbytes / 1e6:.0f} MB, more than an image of at most "
                f"{max_pixels} pixels can take (raise --max-pixels to accept it)",
            )
        return Path(path).read_bytes()
    except OSError as exc:
        raise DecodeError("unreadable", f"cannot read the file: {exc.strerror or exc}") from None
    except MemoryError:
        raise out_of_memory("reading") from None


def decoded_bytes(mode: str, width: int, height: int) -> int:
    """Bytes that decoding an image holds: its pixels at the file's own sample type (1 byte
    a band for 8-bit modes, 2 for 16-bit, 4 for 32-bit integer or float) plus the 3-byte RGB
    result."""
    try:
        desc = ImageMode.getmode(mode)
        per_pixel = len(desc.bands) * np.dtype(desc.typestr).itemsize
    except (KeyError, TypeError):  # a mode Pillow cannot describe: assume the widest
        per_pixel = 4
    return width * height * (per_pixel + 3)


def decode_image(
    path: Path,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: Literal["white", "black"] = "white",
    max_bytes: int | None = None,
) -> DecodedImage:
    """Decode ``path`` to 8-bit RGB, refusing anything unsafe or broken.

    Args:
        path: the image file.
        max_pixels: refuse images whose width x height exceeds this (checked on the header).
        background: colour that transparent pixels are composited onto.
        max_bytes: refuse images whose decoding would hold more than this
            (:func:`decoded_bytes`, checked on the header); default
            ``DEFAULT_BYTES_PER_PIXEL * max_pixels``.

    Returns:
        The decoded image; ``pixels`` is ``(H, W, 3)`` uint8.

    Raises:
        DecodeError: with ``reason`` and ``detail``; never any other exception for bad input.
    """
    data = read_image_file(path, max_pixels)
    return decode_bytes(data, max_pixels=max_pixels, background=background, max_bytes=max_bytes)


def decode_bytes(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: Literal["white", "black"] = "white",
    max_bytes: int | None = None,
) -> DecodedImage:
    """Like :func:`decode_image`, from the file's bytes."""
    if not data:
        raise DecodeError("empty_file", "the file has 0 bytes")
    Image.init()  # registers the WebP plugin, which ``formats=`` needs to know by name
    with warnings.catch_warnings():
        # Our own limit is checked below; PIL's warning for > 89 MP would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=_FORMATS)
        except UnidentifiedImageError:
            raise DecodeError("not_image", "not a JPEG, PNG, WebP or BMP image") from None
        except Image.DecompressionBombError as exc:
            raise DecodeError("too_large", f"refused by Pillow's bomb guard: {exc}") from None
        except Exception as exc:  # any parser failure is a bad file, not a bug
            raise _classify(exc) from None

        width, height = img.size
        if width * height > max_pixels:
            raise DecodeError(
                "too_large",
                f"{width}x{height} = {width * height / 1e6:.1f} MP is over the limit of "
                f"{max_pixels} pixels (raise --max-pixels to accept it)",
            )
        if width == 0 or height == 0:
            raise DecodeError("corrupt", f"the header says {width}x{height}")
        limit = DEFAULT_BYTES_PER_PIXEL * max_pixels if max_bytes is None else max_bytes
        need = decoded_bytes(img.mode, width, height)
        if need > limit:
            raise DecodeError(
                "too_large",
                f"{width}x{height} in mode {img.mode} takes {need / 1e6:.1f} MB to decode, "
                f"over the limit of {limit / 1e6:.1f} MB",
            )
        try:
            img.load()
        except Image.DecompressionBombError as exc:
            raise DecodeError("too_large", f"refused by Pillow's bomb guard: {exc}") from None
        except Exception as exc:
            raise _classify(exc) from None

    source_mode, source_format = img.mode, img.format or "?"
    try:
        with warnings.catch_warnings():  # "Corrupt EXIF data": handled below, not news
            warnings.simplefilter("ignore", UserWarning)
            orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1))
            transposed = ImageOps.exif_transpose(img) if orientation != 1 else img
    except MemoryError:  # not broken EXIF: a lower-memory result would differ
        raise out_of_memory("decoding") from None
    except Exception:  # broken EXIF: keep the pixels as stored, they are fine
        orientation, transposed = 1, img
    exif_transposed = orientation in range(2, 9)
    try:
        rgb = _to_rgb8(transposed, background)
    except MemoryError:
        raise out_of_memory("decoding") from None
    except Exception as exc:
        raise DecodeError("corrupt", f"cannot convert mode {source_mode} to RGB: {exc}") from None
    return DecodedImage(rgb, source_mode, source_format, exif_transposed)


def _classify(exc: Exception) -> DecodeError:
    if isinstance(exc, MemoryError):  # the machine, not the file: never "corrupt"
        return out_of_memory("decoding")
    message = str(exc) or type(exc).__name__
    if "truncated" in message.lower():
        return DecodeError("truncated", f"the file ends early ({message})")
    return DecodeError("corrupt", f"the image data does not decode ({message})")


def _to_rgb8(img: Image.Image, background: str) -> np.ndarray:
    """Convert any PIL mode to ``(H, W, 3)`` uint8 RGB (see the module docstring)."""
    if img.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        # Pillow's own I -> L conversion clips at 255 instead of scaling, which turns a
        # 16-bit photo white; scale the full 16-bit range instead. A band of rows at a time:
        # a float64 copy of a whole 100 MP image would be 800 MB, and each step another.
        values = np.asarray(img)
        gray = np.empty(values.shape, np.uint8)
        if img.mode == "F":
            in_unit_range = bool(values.size) and np.nanmax(values) <= 1.0
            scale = 65535.0 if in_unit_range else 1.0  # float images in [0, 1]
            for r in range(0, values.shape[0], _ROWS):
                band = np.nan_to_num(values[r : r + _ROWS].astype(np.float64) * scale)
                gray[r : r + _ROWS] = np.clip(np.rint(band / 257.0), 0, 255)
        else:
            for r in range(0, values.shape[0], _ROWS):
                band = np.clip(values[r : r + _ROWS].astype(np.int64), 0, 65535)
                # round(v / 257) exactly: v / 257 is never a half for an integer v.
                gray[r : r + _ROWS] = (band + 128) // 257
        return np.repeat(gray[:, :, None], 3, axis=2)

    img = _to_srgb(img)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        fill = (255, 255, 255, 255) if background == "white" else (0, 0, 0, 255)
        base = Image.new("RGBA", rgba.size, fill)
        img = Image.alpha_composite(base, rgba)
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb)


def _to_srgb(img: Image.Image) -> Image.Image:
    """Convert from an embedded ICC profile to sRGB, so wide-gamut photos keep their colours."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return img
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(img, src, _SRGB, outputMode=out_mode)
    except MemoryError:  # not a broken profile: unconverted colours would be kept for good
        raise
    except Exception:  # a broken profile: the pixels are still usable as-is
        return img
    return converted if converted is not None else img


def not_a_file(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as a file, in a few words; None when it can (a regular
    file, or a link to one).

    Walking a folder finds entries that carry an image or video suffix but hold no file:
    links that loop or lead nowhere, named pipes (reading one waits for a writer, forever),
    sockets, devices. The scans report each with this reason instead of leaving it out.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link that loops (never reaches a file)"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR) and os.path.lexists(path):
            return f"a dangling symbolic link (to {os.readlink(path)!r}, which does not exist)"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "not found"
        return f"unreadable ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a regular file"
    return "not a regular file"


def walk_media(folder: Path, suffixes: Collection[str]) -> list[Path]:
    """Entries under ``folder`` (walked recursively, sorted) whose suffix is in ``suffixes``,
    folders left out: regular files, and the entries :func:`not_a_file` describes (links to
    nowhere, named pipes), which the scans report as skipped rather than drop unseen."""
    return sorted(f for f in folder.rglob("*") if f.suffix.lower() in suffixes and not f.is_dir())


def list_image_paths(paths: list[str | Path]) -> list[Path]:
    """Image files among ``paths`` (files as given, folders walked with :func:`walk_media`,
    sorted). An entry that exists but holds no file (:func:`not_a_file`) is listed, for
    the scan to report it as skipped.

    Raises:
        UserError: a path that does not exist, or nothing found.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += walk_media(p, IMAGE_SUFFIXES)
        elif os.path.lexists(p):
            out.append(p)
        else:
            raise UserError(f"not found: {p}")
    if not out:
        raise UserError("no images found in the given paths")
    return out
