"""Pixel conversions between model tensors and 8-bit images."""

from __future__ import annotations

import numpy as np
import torch


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Convert generator output to displayable pixels.

    Args:
        x: float tensor (N, 3, H, W) in [-1, 1]; values outside are clamped.

    Returns:
        uint8 array (N, H, W, 3). Uses ``x * 127.5 + 128`` then clamp and truncation, as
        StyleGAN does: that is round-half-up of ``(x + 1) * 127.5``, so -1 -> 0, 0 -> 128,
        1 -> 255, and pixels loaded as ``p / 127.5 - 1`` come back exactly as ``p``.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a (N, 3, H, W) tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected a float tensor in [-1, 1], got dtype {x.dtype}")
    # nan_to_num: casting NaN to uint8 is undefined behaviour; a NaN pixel shows as grey.
    y = torch.nan_to_num(x.detach().float(), nan=0.0) * 127.5 + 128
    y = y.clamp(0, 255).to(torch.uint8)
    return y.permute(0, 2, 3, 1).cpu().numpy()
