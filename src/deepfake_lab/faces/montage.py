"""A contact sheet of face crops, for checking a prepared dataset at a glance."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from deepfake_lab.report.grid import make_grid


def make_montage(
    images: Sequence[np.ndarray], cell: int = 128, columns: int | None = None, gap: int = 2
) -> np.ndarray:
    """Resize ``images`` to ``cell`` x ``cell`` and tile them with :func:`make_grid`.

    Args:
        images: ``(H, W, 3)`` uint8 RGB crops of any sizes (area averaging when shrinking,
            Lanczos when enlarging).
        cell: side of one tile in pixels.
        columns: tiles per row; default ``ceil(sqrt(len(images)))``, a near-square sheet.
        gap: pixels of black between tiles and around the border.

    Returns:
        ``(rows * (cell + gap) + gap, columns * (cell + gap) + gap, 3)`` uint8 RGB, with
        ``columns`` at most ``len(images)``.

    Raises:
        ValueError: ``images`` is empty, or one is not ``(H, W, 3)`` uint8.
    """
    if len(images) == 0:
        raise ValueError("no images to tile")
    if cell < 1:
        raise ValueError(f"cell must be >= 1, got {cell}")
    cells = np.empty((len(images), cell, cell, 3), np.uint8)
    for index, image in enumerate(images):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected (H, W, 3) uint8 images, got {image.dtype} {image.shape}")
        if image.shape[:2] != (cell, cell):
            shrink = image.shape[0] >= cell and image.shape[1] >= cell
            image = cv2.resize(
                image,
                (cell, cell),
                interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4,
            )
        cells[index] = image
    return make_grid(cells, nrow=columns, padding=gap)
