"""The resampling chain: random size history and codec for every training image.

A detector learns whatever separates its classes most easily. Fakes that were generated at
64 px and upscaled to the detector's 128 px, against real faces downscaled from 1024 px, are
told apart by *how they were resized*, and a detector trained on them reads every fake that
was not upscaled as real. :class:`ResampleChain` gives real images, fakes and pseudo-fakes
alike a random history drawn from one distribution, so neither resizing nor compression is a
label:

1. with probability ``p_resize``, a round trip through another size: scale factor
   log-uniform in ``[scale_low, scale_high]`` (below 1: down then up, the trace of an
   upscaled image; above 1: up then down, the trace of a downscaled one), each leg with a
   filter drawn from :data:`FILTERS`;
2. with probability ``p_h264``, an H.264 intra-frame round trip at a rate factor uniform in
   ``[crf_low, crf_high]`` (a face from a streamed or broadcast video; off by default);
3. with probability ``p_jpeg``, a JPEG round trip at a quality uniform in
   ``[jpeg_low, jpeg_high]``.

Why a video codec: a detector that has seen compression only as part of its pseudo-fakes
reads a compressed real face as fake. Measured on the best SBI run (docs, benchmarks): an
H.264 round trip at CRF 23 moved its held-out real faces called fake from 14% to 49%.
With the op on (p 0.5) that shift is gone, but the FaceForensics++ swap, itself H.264, was
ranked worse (0.88/0.86 against 0.92/0.91, two seeds) and no swapped frame was called fake,
so it stays off by default.

Every call draws the same count of numbers from the generator passed in (7), whatever
fires, so equal generator states give equal outputs and resume is exact. The H.264 op uses
the seventh number, a spare before it existed, so chains without it draw what they drew.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from deepfake_lab.augment.robustness import check_h264, h264, jpeg, parse_reencode
from deepfake_lab.errors import UserError

#: Interpolation filters a resampling leg draws from (name -> OpenCV flag). Area averaging
#: only makes sense for a downscale; for an upscale OpenCV treats it as nearest/bilinear.
FILTERS: dict[str, int] = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}
_FILTER_LIST = list(FILTERS.values())


def resample_round_trip(img: np.ndarray, scale: float, down: int, up: int) -> np.ndarray:
    """Resize ``img`` (H, W, 3) uint8 by ``scale`` with filter ``down``, then back to
    (H, W) with filter ``up`` (OpenCV flags); a copy when the size would not change."""
    height, width = img.shape[:2]
    mid = (max(2, round(width * scale)), max(2, round(height * scale)))
    if mid == (width, height):
        return img.copy()
    tmp = cv2.resize(img, mid, interpolation=down)
    return cv2.resize(tmp, (width, height), interpolation=up)


def to_native_floor(img: np.ndarray, side: int) -> np.ndarray:
    """Bring a (S, S, 3) image down to ``side`` px (area) and back up to S px (Lanczos, as
    :func:`deepfake_lab.faces.align.center_crop` upscales), so that it carries no more
    detail than an image whose native size was ``side``; a copy when ``side >= S``."""
    size = img.shape[0]
    if side >= size:
        return img.copy()
    small = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LANCZOS4)


def prepare_input(img: np.ndarray, native_floor: int | None, reencode: str | None) -> np.ndarray:
    """What a detector does to every (S, S, 3) uint8 image before its network sees it: the
    native-size floor (:func:`to_native_floor`), then the re-encoding (``data.reencode``,
    e.g. ``"jpeg95"``); the image itself when neither is set."""
    if native_floor is not None:
        img = to_native_floor(img, native_floor)
    post = parse_reencode(reencode)
    return post(img) if post is not None else img


@dataclass(frozen=True)
class ResampleChain:
    """A random resize round trip, H.264 round trip and JPEG round trip, drawn from one
    distribution for every image of every class.

    Args:
        p_resize: probability of the resize round trip.
        scale_low, scale_high: range of the scale factor (log-uniform), ``0 < low <= high``.
        p_jpeg: probability of the JPEG round trip.
        jpeg_low, jpeg_high: quality range, 1-100.
        p_h264: probability of the H.264 intra-frame round trip.
        crf_low, crf_high: its rate factor range, 0-51 (lower is better quality).

    Call it as ``chain(img, rng)`` with uint8 (H, W, 3) and a ``numpy.random.Generator``.
    """

    p_resize: float = 0.5
    scale_low: float = 0.5
    scale_high: float = 2.0
    p_jpeg: float = 0.5
    jpeg_low: int = 60
    jpeg_high: int = 100
    p_h264: float = 0.0
    crf_low: int = 18
    crf_high: int = 36

    def __post_init__(self) -> None:
        if not all(0 <= p <= 1 for p in (self.p_resize, self.p_jpeg, self.p_h264)):
            raise UserError(
                f"resample: probabilities must be in [0, 1], got p_resize={self.p_resize}, "
                f"p_jpeg={self.p_jpeg}, p_h264={self.p_h264}"
            )
        if not (0.1 <= self.scale_low <= self.scale_high <= 4):
            raise UserError(
                "resample: need 0.1 <= scale_low <= scale_high <= 4, got "
                f"[{self.scale_low}, {self.scale_high}]"
            )
        if not (1 <= self.jpeg_low <= self.jpeg_high <= 100):
            raise UserError(
                "resample: need 1 <= jpeg_low <= jpeg_high <= 100, got "
                f"[{self.jpeg_low}, {self.jpeg_high}]"
            )
        if not (0 <= self.crf_low <= self.crf_high <= 51):
            raise UserError(
                f"resample: need 0 <= crf_low <= crf_high <= 51, got [{self.crf_low}, "
                f"{self.crf_high}]"
            )
        if self.p_h264 > 0:
            check_h264()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One resampled copy of a uint8 (H, W, 3) image."""
        # Fixed count: fire, scale, two filters, fire, quality, and the H.264 draw.
        u = rng.random(7)
        out = img
        if u[0] < self.p_resize:
            lo, hi = np.log(self.scale_low), np.log(self.scale_high)
            scale = float(np.exp(lo + (hi - lo) * u[1]))
            down = _FILTER_LIST[int(u[2] * len(_FILTER_LIST))]
            up = _FILTER_LIST[int(u[3] * len(_FILTER_LIST))]
            out = resample_round_trip(out, scale, down, up)
        if u[6] < self.p_h264:
            # One number decides both: given that it fired, u[6] / p is uniform in [0, 1).
            frac = u[6] / self.p_h264
            out = h264(out, int(round(self.crf_low + (self.crf_high - self.crf_low) * frac)))
        if u[4] < self.p_jpeg:
            quality = int(round(self.jpeg_low + (self.jpeg_high - self.jpeg_low) * u[5]))
            out = jpeg(out, quality)
        return out.copy() if out is img else out

    def move(self, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Resizing back to the same size moves no pixel: ``mask`` as it is, after the same
        7 draws as :meth:`__call__`."""
        rng.random(7)
        return mask


@dataclass(frozen=True)
class Compose:
    """Per-image ops ``(img, rng) -> img`` applied in order, all drawing from one ``rng``.

    Every op also has ``move(mask, rng)``: the same draws, applied only to where pixels go
    (flips, warps), so that a (H, W) float32 blend mask follows its image when it is moved
    from a copy of the generator state the image was augmented with.
    """

    ops: tuple[Any, ...]

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for op in self.ops:
            img = op(img, rng)
        return img

    def move(self, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for op in self.ops:
            mask = op.move(mask, rng)
        return mask
