"""DiffAugment (Zhao et al., NeurIPS 2020, "Differentiable Augmentation for Data-Efficient GAN
Training"): cheap augmentations applied to both real and fake images before D, differentiable
so that G's gradient passes through them.

Reproduces the official implementation's transforms and parameter ranges, vectorised over the
batch, with every random number drawn from an explicit ``torch.Generator``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from deepfake_lab import sharded_random
from deepfake_lab.errors import UserError
from deepfake_lab.sharded_random import RandomSource

Augment = Callable[[Tensor, RandomSource], Tensor]


def _rand(x: Tensor, generator: RandomSource) -> Tensor:
    """One U[0, 1) number per sample, shaped ``(B, 1, 1, 1)`` for broadcasting."""
    # Drawn in float32 whatever x's dtype, so the values do not depend on precision; made
    # where the generator lives (a CPU generator cannot fill a CUDA tensor), then moved.
    r = sharded_random.rand(generator, x.shape[0], 1, 1, 1, device=x.device)
    return r.to(device=x.device, dtype=x.dtype)


def _randint(x: Tensor, low: int, high: int, generator: RandomSource) -> Tensor:
    """One integer in ``[low, high)`` per sample, shaped ``(B,)``."""
    return sharded_random.randint(generator, low, high, x.shape[0], device=x.device).to(x.device)


def rand_brightness(x: Tensor, generator: RandomSource = None) -> Tensor:
    """Add a per-sample offset in [-0.5, 0.5)."""
    return x + (_rand(x, generator) - 0.5)


def rand_saturation(x: Tensor, generator: RandomSource = None) -> Tensor:
    """Scale each pixel's deviation from its channel mean by a per-sample factor in [0, 2)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_rand(x, generator) * 2) + mean


def rand_contrast(x: Tensor, generator: RandomSource = None) -> Tensor:
    """Scale the deviation from the image mean by a per-sample factor in [0.5, 1.5)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x, generator) + 0.5) + mean


def translate(x: Tensor, shift_h: Tensor, shift_w: Tensor) -> Tensor:
    """Integer translation with zero fill: ``out[b, :, i, j] = x[b, :, i + shift_h[b],
    j + shift_w[b]]`` where that is inside the image, else 0.

    Same result as the official padded-grid indexing, done as two gathers (rows, then columns)
    instead of one over a full (B, H, W) index grid.

    Args:
        x: ``(B, C, H, W)``.
        shift_h, shift_w: ``(B,)`` integer shifts with ``|shift| <= H`` (resp. W).
    """
    b, c, h, w = x.shape
    # One pixel of zero padding; indices that fall outside are clamped onto it.
    padded = F.pad(x, [1, 1, 1, 1])
    rows = torch.arange(h, device=x.device) + shift_h[:, None] + 1  # (B, H)
    cols = torch.arange(w, device=x.device) + shift_w[:, None] + 1  # (B, W)
    rows = rows.clamp(0, h + 1)
    cols = cols.clamp(0, w + 1)
    out = padded.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2))
    return out.gather(3, cols[:, None, None, :].expand(b, c, h, w))


def rand_translation(x: Tensor, generator: RandomSource = None, ratio: float = 0.125) -> Tensor:
    """Shift each sample by up to ``ratio`` of its size in each direction, zero padded."""
    max_h, max_w = int(x.shape[2] * ratio + 0.5), int(x.shape[3] * ratio + 0.5)
    shift_h = _randint(x, -max_h, max_h + 1, generator)
    shift_w = _randint(x, -max_w, max_w + 1, generator)
    return translate(x, shift_h, shift_w)


def cutout_mask(h: int, w: int, top: Tensor, left: Tensor, size_h: int, size_w: int) -> Tensor:
    """``(B, 1, H, W)`` float mask: 0 inside the square ``[top, top + size_h) x [left, left +
    size_w)`` of each sample (clipped to the image), 1 elsewhere. ``top``, ``left``: ``(B,)``."""
    rows = torch.arange(h, device=top.device)
    cols = torch.arange(w, device=left.device)
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size_h)  # (B, H)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + size_w)  # (B, W)
    return (~(in_rows[:, :, None] & in_cols[:, None, :]))[:, None].float()


def rand_cutout(x: Tensor, generator: RandomSource = None, ratio: float = 0.5) -> Tensor:
    """Zero a square of ``ratio`` times the image size at a random centre per sample (the
    square may be clipped by the border)."""
    h, w = x.shape[2], x.shape[3]
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # Centre ranges as in the official code (it allows one extra position for even sizes).
    centre_h = _randint(x, 0, h + (1 - size_h % 2), generator)
    centre_w = _randint(x, 0, w + (1 - size_w % 2), generator)
    mask = cutout_mask(h, w, centre_h - size_h // 2, centre_w - size_w // 2, size_h, size_w)
    return x * mask.to(x.dtype)


AUGMENTS: dict[str, tuple[Augment, ...]] = {
    "color": (rand_brightness, rand_saturation, rand_contrast),
    "translation": (rand_translation,),
    "cutout": (rand_cutout,),
}


def parse_policy(policy: str) -> tuple[str, ...]:
    """Split a comma-separated policy into names, raising a UserError for unknown ones.

    Example:
        >>> parse_policy("color, translation,cutout")
        ('color', 'translation', 'cutout')
    """
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [n for n in names if n not in AUGMENTS]
    if unknown:
        raise UserError(
            f"unknown DiffAugment policy {unknown[0]!r}; valid policies: "
            f"{', '.join(AUGMENTS)} (comma-separated, e.g. 'color,translation,cutout')"
        )
    return names


def diff_augment(x: Tensor, policy: str, generator: RandomSource = None) -> Tensor:
    """Apply the augmentations of ``policy`` in order, with fresh parameters per sample.

    Args:
        x: images ``(B, 3, H, W)``, nominally in [-1, 1] (the output may leave that range).
        policy: comma-separated names from ``color``, ``translation``, ``cutout``; ``""`` is
            the identity.
        generator: source of all randomness (the global RNG if None). Equal generator states
            give equal outputs.

    Returns:
        Augmented images, same shape and dtype, differentiable with respect to ``x``.
    """
    for name in parse_policy(policy):
        for fn in AUGMENTS[name]:
            x = fn(x, generator)
    return x
