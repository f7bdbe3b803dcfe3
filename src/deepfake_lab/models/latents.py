"""Latents of our generators, drawn from seeds: the same seed gives the same face anywhere."""

from __future__ import annotations

import torch


def latents_for_seeds(seeds: list[int], z_dim: int, truncation: float = 1.0) -> torch.Tensor:
    """One standard-normal latent per seed (drawn on the CPU), scaled by ``truncation``.

    Our generators have no mapping network, so truncation pulls z towards the mean of its
    prior (zero): psi = 1 is the full distribution, psi = 0 the "average" image.

    Returns:
        float tensor (len(seeds), z_dim).
    """
    zs = [torch.randn(z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds]
    return torch.stack(zs) * truncation
