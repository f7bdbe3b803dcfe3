"""Exponential moving average of a model's weights (for G_ema)."""

from __future__ import annotations

import torch
from torch import nn


def ema_beta(batch: int, cur_nimg: int, half_life_kimg: float, rampup: float | None) -> float:
    """Per-step decay so that the average has the given half-life in images.

    As in StyleGAN2-ADA: the half-life is capped at ``rampup * cur_nimg`` early in training,
    so the average does not drag along the random initial weights.
    """
    if half_life_kimg <= 0:
        return 0.0
    half_life = half_life_kimg * 1000.0
    if rampup is not None:
        half_life = min(half_life, cur_nimg * rampup)
    if half_life <= 0:
        return 0.0
    return 0.5 ** (batch / half_life)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """``ema = beta * ema + (1 - beta) * model`` for parameters; buffers are copied.

    Buffers (e.g. BatchNorm running statistics) are copied, not averaged, as StyleGAN does.
    """
    ema_params = list(ema.parameters())
    params = list(model.parameters())
    if beta == 0.0:
        torch._foreach_copy_(ema_params, [p.detach() for p in params])
    else:
        torch._foreach_lerp_(ema_params, [p.detach() for p in params], 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)
