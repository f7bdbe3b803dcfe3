"""A contact sheet of face crops, for checking a prepared dataset at a glance."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np


def make_montage(
    images: Sequence[np.ndarray], cell: int = 128, columns: int | None = None, gap: int = 2
) -> np.ndarray:
    """Tile ``images`` row by row on a dark grey grid.

    Args:
        images: ``(H, W, 3)`` uint8 RGB crops (resized to ``cell`` x ``cell``, area
            averaging when shrinking).
        cell: side of one tile in pixels.
        columns: tiles per row; default ``ceil(sqrt(len(images)))``, a near-square sheet.
        gap: pixels between tiles.

    Returns:
        ``(rows * (cell + gap) + gap, columns * (cell + gap) + gap, 3)`` uint8 RGB.

    Raises:
        ValueError: ``images`` is empty.
    """
    if not images:
        raise ValueError("no images to tile")
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    step = cell + gap
    sheet = np.full((rows * step + gap, columns * step + gap, 3), 32, dtype=np.uint8)
    for index, image in enumerate(images):
        if image.shape[:2] != (cell, cell):
            shrink = image.shape[0] >= cell and image.shape[1] >= cell
            image = cv2.resize(
                image,
                (cell, cell),
                interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4,
            )
        row, col = divmod(index, columns)
        y, x = gap + row * step, gap + col * step
        sheet[y : y + cell, x : x + cell] = image
    return sheet
