"""Face alignment: a similarity transform from five landmarks onto an FFHQ-like template.

Template (:data:`FFHQ_TEMPLATE`, fractions of the output side, ``(x, y)`` from the top left):

==============  =========  =========
landmark        x          y
==============  =========  =========
right eye       0.3736     0.4711
left eye        0.6264     0.4711
nose tip        0.5000     0.6150
right mouth     0.3922     0.7247
left mouth      0.6078     0.7247
==============  =========  =========

Derivation. FFHQ's ``recreate_aligned_images`` (Karras et al. 2019) crops a square of side
``2 * max(2 * |e2e|, 1.8 * |e2m|)`` centred at ``eye_mid + 0.1 * e2m``, where ``e2e`` is the
eye-to-eye vector and ``e2m`` the vector from the eye midpoint to the mouth midpoint. For a
typical face ``|e2m| ~ |e2e|``, so the eye term wins: the side is 4 eye distances (inter-ocular
distance 0.25 of the width) and the eye line sits ``0.1 * |e2m| / side ~ 0.025`` above the
centre, i.e. about 0.475 of the height from the top, with the whole head and some neck and
shoulders inside. The numbers above are the same framing measured: the mean of YuNet's
landmarks over the 400 FFHQ images of ``shared/data/ffhq-128``, made left-right symmetric
(inter-ocular 0.253, eyes at 0.471, mouth at 0.725; std about 0.015 per coordinate).

The transform here keeps the eyes exactly level: the rotation takes the eye line onto the
template's (horizontal) eye line, then scale and translation are the least-squares fit of
all five points given that rotation. A full five-point fit would let an open mouth or a
turned head tilt the eye line.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: Canonical landmark positions, ``(5, 2)`` float64, fractions of the output side.
FFHQ_TEMPLATE = np.array(
    [
        [0.3736, 0.4711],
        [0.6264, 0.4711],
        [0.5000, 0.6150],
        [0.3922, 0.7247],
        [0.6078, 0.7247],
    ]
)

# Largest intermediate warp side (pixels) when supersampling before the area downscale.
_MAX_WARP_SIDE = 4096
_MAX_SUPERSAMPLE = 8


def alignment_transform(
    landmarks: np.ndarray, size: int, template: np.ndarray = FFHQ_TEMPLATE
) -> np.ndarray:
    """The similarity transform taking ``landmarks`` onto ``template * size``.

    Args:
        landmarks: ``(5, 2)`` source-image ``(x, y)`` in YuNet order (right eye, left eye,
            nose, right mouth corner, left mouth corner).
        size: output side in pixels.
        template: ``(5, 2)`` target positions as fractions of the side.

    Returns:
        ``(2, 3)`` float64 affine ``[s*R | t]`` mapping source pixels to output pixels.

    Raises:
        ValueError: the landmarks are degenerate (eyes on top of each other, or NaN).
    """
    src = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    dst = np.asarray(template, dtype=np.float64).reshape(5, 2) * size
    src_eye, dst_eye = src[1] - src[0], dst[1] - dst[0]
    if not np.all(np.isfinite(src)) or np.hypot(*src_eye) < 1e-6:
        raise ValueError("degenerate landmarks: the two eyes coincide")
    angle = math.atan2(dst_eye[1], dst_eye[0]) - math.atan2(src_eye[1], src_eye[0])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    turned = src @ rot.T
    p, q = turned - turned.mean(axis=0), dst - dst.mean(axis=0)
    scale = float(np.sum(p * q) / np.sum(p * p))
    if not scale > 0:
        raise ValueError("degenerate landmarks: they do not resemble a face")
    offset = dst.mean(axis=0) - scale * turned.mean(axis=0)
    return np.hstack([scale * rot, offset[:, None]])


def align_face(
    image: np.ndarray,
    landmarks: np.ndarray,
    size: int,
    template: np.ndarray = FFHQ_TEMPLATE,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp the face in ``image`` onto the template, at ``size`` x ``size``.

    Downscaling is done by warping at an integer multiple of ``size`` (so the warp samples
    about one source pixel per output pixel) and then averaging blocks with ``INTER_AREA``;
    upscaling warps directly with Lanczos. Pixels from outside the image are filled by
    reflecting the border.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        landmarks: ``(5, 2)`` source ``(x, y)`` (see :func:`alignment_transform`).
        size: output side.
        template: target landmark fractions.

    Returns:
        ``(aligned, transform)``: ``(size, size, 3)`` uint8 RGB, and the ``(2, 3)`` float64
        affine from source pixels to output pixels.
    """
    transform = alignment_transform(landmarks, size, template)
    scale = math.hypot(transform[0, 0], transform[1, 0])
    factor = _supersample_factor(scale, size)
    if factor == 1:
        aligned = cv2.warpAffine(
            image,
            transform,
            (size, size),
            flags=cv2.INTER_LANCZOS4,
            borderMode=cv2.BORDER_REFLECT,
        )
    else:
        big = cv2.warpAffine(
            image,
            transform * factor,
            (size * factor, size * factor),
            flags=cv2.INTER_CUBIC,
            borderMode=cv2.BORDER_REFLECT,
        )
        aligned = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
    return aligned, transform


def center_crop(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The largest centred square of ``image``, resized to ``size`` (for pre-aligned sets).

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        size: output side.

    Returns:
        ``(crop, transform)``: ``(size, size, 3)`` uint8 RGB and the ``(2, 3)`` float64
        affine from source pixels to output pixels.
    """
    height, width = image.shape[:2]
    side = min(height, width)
    x0, y0 = (width - side) // 2, (height - side) // 2
    square = image[y0 : y0 + side, x0 : x0 + side]
    interpolation = cv2.INTER_AREA if side >= size else cv2.INTER_LANCZOS4
    crop = square if side == size else cv2.resize(square, (size, size), interpolation=interpolation)
    scale = size / side
    transform = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]])
    return np.ascontiguousarray(crop), transform


def map_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine to ``(N, 2)`` points; returns ``(N, 2)`` float64."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ np.asarray(transform)[:, :2].T + np.asarray(transform)[:, 2]


def _supersample_factor(scale: float, size: int) -> int:
    """Integer k such that warping at ``k * size`` is not a downscale (capped for memory)."""
    if scale >= 1.0:
        return 1
    factor = min(math.ceil(1.0 / scale), _MAX_SUPERSAMPLE, max(1, _MAX_WARP_SIDE // size))
    return max(1, factor)
