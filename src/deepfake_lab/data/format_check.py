"""Warn when real and fake images differ in how they were stored, not in what they show.

A detector learns whatever separates the classes most easily. If every real face is a camera
JPEG and every fake a PNG straight from the generator, it can score perfectly by spotting
compression traces and fail on the first re-saved fake. :func:`check_formats` compares the
two classes on three things a file carries besides the picture:

* file format share (PIL's format, the extension when the header is unreadable);
* image size and aspect (up- and down-scaling to the training size leave different traces);
* for JPEGs: estimated quality, the exact quantisation tables, and chroma subsampling.

Only headers are read (``Image.open`` parses the header and the JPEG tables, and decodes no
pixel), and at most ``max_per_class`` files per class, evenly spread over the list.
"""

from __future__ import annotations

import io
import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, JpegImagePlugin

from deepfake_lab.data.detection import FAKE, REAL, DetectionSample

#: Share difference (total variation distance) of formats above which a warning is given.
FORMAT_TOLERANCE = 0.1
#: Distance of the size/aspect histograms above which a warning is given.
SIZE_TOLERANCE = 0.3
#: Difference of median estimated JPEG quality above which a warning is given.
QUALITY_TOLERANCE = 2

_FIX = "re-encode both the same way (e.g. --set data.reencode=jpeg95)"
_SAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}


@dataclass
class _ClassFiles:
    """What the headers of one class say."""

    formats: Counter[str] = field(default_factory=Counter)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    qualities: list[int] = field(default_factory=list)
    tables: Counter[tuple[tuple[int, ...], ...]] = field(default_factory=Counter)
    sampling: Counter[str] = field(default_factory=Counter)
    unreadable: int = 0

    @property
    def n(self) -> int:
        return sum(self.formats.values())


def check_formats(samples: Sequence[DetectionSample], max_per_class: int = 2000) -> list[str]:
    """Warnings, one sentence each, for storage differences between real and fake images.

    Args:
        samples: labelled files (from :func:`deepfake_lab.data.detection.collect_samples`).
        max_per_class: header reads per class at most (evenly spaced), to stay fast.

    Returns:
        Human-readable warnings with the numbers; empty when the classes match (or one class
        is empty). Unreadable files are left to the decoder, which reports them.
    """
    real = _scan([s.path for s in samples if s.label == REAL], max_per_class)
    fake = _scan([s.path for s in samples if s.label == FAKE], max_per_class)
    if real.n == 0 or fake.n == 0:
        return []
    out: list[str] = []

    if _tv(real.formats, fake.formats) > FORMAT_TOLERANCE:
        out.append(
            f"real images are {_describe_formats(real)}, fake images {_describe_formats(fake)}: "
            f"a detector can learn the file format instead of the fakery; {_FIX}"
        )

    rsize, fsize = Counter(map(_size_bucket, real.sizes)), Counter(map(_size_bucket, fake.sizes))
    if _tv(rsize, fsize) > SIZE_TOLERANCE:
        out.append(
            f"real images are {_describe_sizes(real.sizes)}, fake images "
            f"{_describe_sizes(fake.sizes)}: resizing to the training size leaves different "
            "traces in each class (down- vs up-scaling); bring both to similar sizes first "
            "(e.g. run both folders through `deepfake-lab data prepare` with the same --size)"
        )

    if real.qualities and fake.qualities:
        out += _jpeg_warnings(real, fake)
    return out


def estimate_jpeg_quality(qtables: dict[int, Sequence[int]]) -> int:
    """The IJG quality (1-100) whose standard luma table is closest to ``qtables[0]``.

    Exact for files written by libjpeg/PIL/OpenCV with a ``quality`` setting; the nearest
    match for other encoders (cameras, Photoshop). Only the luma table is used: encoders
    differ most in their chroma tables, and the exact tables are compared separately.
    Returns 0 when there is no luma table.
    """
    if 0 not in qtables:
        return 0
    table = np.asarray(qtables[0], dtype=np.float64)[:64]
    return int(np.argmin(np.abs(_reference_luma() - table).sum(axis=1))) + 1


def _jpeg_warnings(real: _ClassFiles, fake: _ClassFiles) -> list[str]:
    qr, qf = int(np.median(real.qualities)), int(np.median(fake.qualities))
    both = f"real JPEGs ({len(real.qualities)}) have {_describe_quality(real.qualities)}"
    both += f", fake JPEGs ({len(fake.qualities)}) {_describe_quality(fake.qualities)}"
    if abs(qr - qf) > QUALITY_TOLERANCE:
        return [f"{both}: a detector can learn the compression level instead of the fakery; {_FIX}"]
    out = []
    shared_r = sum(c for t, c in real.tables.items() if t in fake.tables) / len(real.qualities)
    shared_f = sum(c for t, c in fake.tables.items() if t in real.tables) / len(fake.qualities)
    if min(shared_r, shared_f) < 0.5:
        out.append(
            f"{both}, but different quantisation tables: only {100 * shared_r:.0f}% of real "
            f"and {100 * shared_f:.0f}% of fake JPEGs use a table set found in the other class "
            f"(different encoders); a detector can learn the encoder; {_FIX}"
        )
    if _tv(real.sampling, fake.sampling) > SIZE_TOLERANCE:
        out.append(
            f"real JPEGs use {_shares(real.sampling)} chroma subsampling, fake JPEGs "
            f"{_shares(fake.sampling)}: a detector can learn the colour resolution; {_FIX}"
        )
    return out


def _scan(paths: list[Path], limit: int) -> _ClassFiles:
    if len(paths) > limit:
        paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, limit).round()]
    info = _ClassFiles()
    for path in paths:
        quality, tables, sampling = None, None, None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # bomb warnings: the decoder enforces limits
                with Image.open(path) as im:
                    fmt, size = im.format or path.suffix.lstrip(".").upper() or "?", im.size
                    qt = getattr(im, "quantization", None) if fmt == "JPEG" else None
                    if qt:
                        quality = estimate_jpeg_quality(qt)
                        tables = tuple(tuple(qt[k]) for k in sorted(qt))
                        sampling = _SAMPLING.get(JpegImagePlugin.get_sampling(im), "other")
        except Exception:  # any unreadable header: the decoder will skip and report the file
            info.unreadable += 1
            continue
        info.formats[fmt] += 1
        info.sizes.append(size)
        if quality is not None and tables is not None and sampling is not None:
            info.qualities.append(quality)
            info.tables[tables] += 1
            info.sampling[sampling] += 1
    return info


@lru_cache(maxsize=1)
def _reference_luma() -> np.ndarray:
    """The luma tables PIL writes at quality 1..100, (100, 64)."""
    tables = []
    tiny = Image.new("RGB", (8, 8))
    for q in range(1, 101):
        buf = io.BytesIO()
        tiny.save(buf, format="JPEG", quality=q)
        # Read back, so the order of the 64 entries is whatever PIL reports for files too.
        with Image.open(io.BytesIO(buf.getvalue())) as im:
            tables.append(list(im.quantization[0]))
    return np.asarray(tables, dtype=np.float64)


def _tv(a: Counter, b: Counter) -> float:
    """Total variation distance of two histograms (0 same shares, 1 disjoint)."""
    na, nb = sum(a.values()), sum(b.values())
    if na == 0 or nb == 0:
        return 0.0
    return 0.5 * sum(abs(a[k] / na - b[k] / nb) for k in set(a) | set(b))


def _shares(counts: Counter) -> str:
    total = sum(counts.values())
    return ", ".join(f"{100 * c / total:.0f}% {k}" for k, c in counts.most_common(3))


def _describe_quality(qualities: list[int]) -> str:
    lo, hi, med = min(qualities), max(qualities), int(np.median(qualities))
    return f"quality ~{med}" + (f" ({lo}-{hi})" if hi - lo > QUALITY_TOLERANCE else "")


def _describe_formats(info: _ClassFiles) -> str:
    parts = []
    for fmt, count in info.formats.most_common(3):
        part = f"{100 * count / info.n:.0f}% {fmt}"
        if fmt == "JPEG" and info.qualities:
            part += f" ({_describe_quality(info.qualities)})"
        parts.append(part)
    return ", ".join(parts)


def _size_bucket(size: tuple[int, int]) -> tuple[float, str]:
    """Half-octave of the short side, and square / portrait / landscape (5% tolerance)."""
    width, height = size
    side = max(1, min(width, height))
    ratio = width / max(1, height)
    shape = "square" if abs(ratio - 1) <= 0.05 else "landscape" if ratio > 1 else "portrait"
    return round(2 * math.log2(side)) / 2, shape


def _describe_sizes(sizes: list[tuple[int, int]]) -> str:
    (w, h), count = Counter(sizes).most_common(1)[0]
    median = int(np.median([min(s) for s in sizes]))
    share = f"{100 * count / len(sizes):.0f}%"
    return f"mostly {w}x{h} ({share}; median short side {median} px)"
