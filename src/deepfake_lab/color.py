"""Colour conventions shared by every module that needs brightness."""

from __future__ import annotations

import numpy as np

#: ITU-R BT.601 luma weights for R, G, B (what JPEG's Y channel uses).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def luma(image: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """BT.601 luma of RGB images.

    Args:
        image: ``(..., 3)`` RGB, any numeric dtype (uint8 0-255 stays on that scale).

    Returns:
        ``(...)`` in ``dtype``, on the input's scale.
    """
    return np.asarray(image, dtype) @ np.asarray(LUMA_WEIGHTS, dtype)
