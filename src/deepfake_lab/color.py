"""Colour conventions shared by every module that needs brightness."""

from __future__ import annotations

import numpy as np

#: ITU-R BT.601 luma weights for R, G, B (what JPEG's Y channel uses).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


#: Pixels converted at a time by :func:`luma`: a converted copy of the whole image would cost
#: 24 bytes a pixel in float64 (2.4 GB at 100 MP) on top of the result's 8.
LUMA_CHUNK_PIXELS = 1 << 20


def luma(image: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """BT.601 luma of RGB images, converted a band of rows at a time (the result is the same
    as converting the whole image at once; only the memory differs).

    Args:
        image: ``(..., 3)`` RGB, any numeric dtype (uint8 0-255 stays on that scale).

    Returns:
        ``(...)`` in ``dtype``, on the input's scale.
    """
    image = np.asarray(image)
    weights = np.asarray(LUMA_WEIGHTS, dtype)
    if image.ndim < 3 or image[..., 0].size <= LUMA_CHUNK_PIXELS:
        return image.astype(dtype, copy=False) @ weights
    out = np.empty(image.shape[:-1], dtype)
    rows = max(1, LUMA_CHUNK_PIXELS // max(1, int(np.prod(image.shape[1:-1]))))
    for i in range(0, image.shape[0], rows):
        out[i : i + rows] = image[i : i + rows].astype(dtype, copy=False) @ weights
    return out
