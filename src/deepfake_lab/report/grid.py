"""Image grids for sample sheets, without torchvision.

Replaces ``torchvision.utils.make_grid`` / ``save_image`` for the two layouts we use:
uint8 NHWC arrays (datasets, saved images) and float NCHW tensors in [-1, 1] (generator
output).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from deepfake_lab.io import write_png
from deepfake_lab.pixels import to_uint8


def _as_nhwc_uint8(images: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        if images.is_floating_point():
            return to_uint8(images)
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            "expected uint8 images (N, H, W, 3) or a float tensor (N, 3, H, W) in [-1, 1], "
            f"got {images.dtype} array of shape {images.shape}"
        )
    return images


def make_grid(
    images: np.ndarray | torch.Tensor, nrow: int | None = None, padding: int = 2
) -> np.ndarray:
    """Tile images into one picture, row by row, with black padding around every cell.

    Args:
        images: uint8 array (N, H, W, 3), or float tensor (N, 3, H, W) in [-1, 1].
        nrow: images per row (as in torchvision); default ceil(sqrt(N)), a square-ish grid.
        padding: pixels of black between cells and around the border.

    Returns:
        uint8 array (rows * (H + padding) + padding, nrow * (W + padding) + padding, 3).
        Unused cells of the last row stay black.
    """
    arr = _as_nhwc_uint8(images)
    n, h, w, _ = arr.shape
    if n == 0:
        raise ValueError("make_grid needs at least one image")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    ncol = math.ceil(math.sqrt(n)) if nrow is None else int(nrow)
    if ncol < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    ncol = min(ncol, n)
    nrows = math.ceil(n / ncol)
    grid = np.zeros(
        (nrows * (h + padding) + padding, ncol * (w + padding) + padding, 3), dtype=np.uint8
    )
    for i in range(n):
        r, c = divmod(i, ncol)
        y = padding + r * (h + padding)
        x = padding + c * (w + padding)
        grid[y : y + h, x : x + w] = arr[i]
    return grid


def save_grid(
    images: np.ndarray | torch.Tensor, path: Path, nrow: int | None = None, padding: int = 2
) -> Path:
    """Write ``make_grid(images, nrow, padding)`` to ``path`` as a PNG, atomically.

    Returns:
        ``path``.
    """
    path = Path(path)
    return write_png(path, make_grid(images, nrow=nrow, padding=padding))
