"""Random affine jitter of whole training images: pose and alignment are not labels.

A detector trained on frontal, tightly aligned photos learns what *its* alignment looks like.
Faces in the wild arrive rotated, shifted and scaled a little by another face detector, a
head pose, or a crop, and every such warp resamples the whole image. The SBI-trained
ResNet-20 of ``docs/benchmarks.md`` moved the real faces it was trained on by +1.7 logits
under a 3 degree rotation and by +2.1 under a 5% zoom (``bench/warp_sensitivity.py``): a
resampled real face read like a blended one. :class:`RandomAffine` gives every training
image of every class the same chance of such a warp, so that neither alignment nor the
softness a warp leaves is a label; the seams a blend leaves move with the image and stay.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from deepfake_lab.errors import UserError


def affine_matrix(size: int, degrees: float, scale: float, tx: float, ty: float) -> np.ndarray:
    """The (2, 3) matrix that rotates by ``degrees`` (counter-clockwise) and scales by
    ``scale`` about the centre of a ``size`` px square, then shifts by ``(tx, ty)`` px."""
    c = size / 2
    m = cv2.getRotationMatrix2D((c, c), degrees, scale)
    m[:, 2] += (tx, ty)
    return m


def warp(
    img: np.ndarray, degrees: float = 0.0, scale: float = 1.0, tx: float = 0.0, ty: float = 0.0
) -> np.ndarray:
    """``img`` (S, S, 3) uint8 (or an (S, S) float32 mask) warped by :func:`affine_matrix`:
    bilinear, borders reflected (no black corners, which would be a mark of the warp)."""
    m = affine_matrix(img.shape[0], degrees, scale, tx, ty)
    return cv2.warpAffine(
        img,
        m,
        (img.shape[1], img.shape[0]),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )


@dataclass(frozen=True)
class RandomAffine:
    """With probability ``p``, one random rotation, scale and shift of the whole image.

    Args:
        p: chance of a warp, in [0, 1].
        degrees: rotation uniform in ``[-degrees, degrees]``, 0-45.
        scale: ``(low, high)`` zoom range (log-uniform), within [0.5, 2].
        shift: translation uniform in ``[-shift, shift]`` of the side, per axis, 0-0.25.

    Each warp is :func:`warp`. Call it as ``aug(img, rng)`` with uint8 (S, S, 3) and a
    ``numpy.random.Generator``; every call draws exactly 5 numbers, whatever fires.
    """

    p: float = 0.5
    degrees: float = 8.0
    scale: tuple[float, float] = (0.9, 1.1)
    shift: float = 0.04

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not (
            0.0 <= self.p <= 1.0
            and 0.0 <= self.degrees <= 45.0
            and 0.5 <= lo <= hi <= 2.0
            and 0.0 <= self.shift <= 0.25
        ):
            raise UserError(
                "augment affine: need p in [0, 1], degrees in [0, 45], 0.5 <= scale low <= "
                f"high <= 2 and shift in [0, 0.25], got p={self.p}, degrees={self.degrees}, "
                f"scale={list(self.scale)}, shift={self.shift}"
            )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["scale"] = list(self.scale)
        return out

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One (maybe) warped copy of a uint8 (S, S, 3) image."""
        return self._apply(img, rng)

    def move(self, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The same draws' warp of a (S, S) float32 mask (see ``Compose.move``)."""
        return self._apply(mask, rng)

    def _apply(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        u = rng.random(5)  # fixed count: fire, angle, scale, two shifts
        if u[0] >= self.p:
            return img.copy()
        size = img.shape[0]
        lo, hi = np.log(self.scale[0]), np.log(self.scale[1])
        return warp(
            img,
            degrees=self.degrees * (2 * u[1] - 1),
            scale=float(np.exp(lo + (hi - lo) * u[2])),
            tx=self.shift * size * (2 * u[3] - 1),
            ty=self.shift * size * (2 * u[4] - 1),
        )
