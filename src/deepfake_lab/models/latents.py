"""Latents of our generators, drawn from seeds: the same seed gives the same face anywhere."""

from __future__ import annotations

import torch


def latents_for_seeds(seeds: list[int], z_dim: int, truncation: float = 1.0) -> torch.Tensor:
    """One standard-normal latent per seed (drawn on the CPU), scaled by ``truncation``.

    Scaling z is the truncation of generators without a mapping network (psi = 1: the full
    distribution, 0: the "average" image); ``Generator.sample`` applies each architecture's
    own truncation (in W for ``stylegan2``) to unscaled latents.

    Returns:
        float tensor (len(seeds), z_dim).
    """
    zs = [torch.randn(z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds]
    return torch.stack(zs) * truncation
