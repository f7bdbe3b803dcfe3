"""Precise BatchNorm statistics: recompute the running mean and variance that a model uses
in eval mode from the training data, before each validation (Wu and Johnson 2021,
"Rethinking 'Batch' in BatchNorm", section 3: PreciseBN).

Why: BatchNorm's running statistics are an exponential average (momentum 0.1) that starts
at mean 0, variance 1. A detector that trains for a few dozen steps keeps much of that
start: after 16 steps 0.9^16 = 19% of the variance is still the initial 1. NPR's residual
has a variance near 1e-3, so its stem normalised with a variance 300x too large, and a fresh
detector that separated its training batches perfectly (train-mode ROC-AUC 1.0) read the
same images backwards in eval mode (0.18). The average also lags behind weights that move
fast early in training. Recomputing the statistics with the current weights, as an equal
average over a fixed set of training batches, fixes both; the weights themselves never
depend on running statistics (training normalises with batch statistics), so this changes
what validation, calibration and scoring see, never the training trajectory.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


def training_batchnorms(model: nn.Module) -> list[_BatchNorm]:
    """BatchNorm layers whose running statistics ``model.train()`` updates: layers of a
    frozen backbone stay in eval mode in training, so their (pretrained) statistics are not
    this run's to recompute."""
    was_training = model.training
    model.train()
    bns = [
        m
        for m in model.modules()
        if isinstance(m, _BatchNorm) and m.training and m.track_running_stats
    ]
    model.train(was_training)
    return bns


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, batches: Iterable[Tensor]) -> int:
    """Replace the running statistics of ``model``'s training BatchNorm layers by their
    equal-weight average over ``batches`` (each batch's mean and unbiased variance, as
    ``torch.optim.swa_utils.update_bn``), computed with the current weights.

    Only those BatchNorm layers run in training mode during the pass; everything else
    (dropout, spectral norm's power iteration) is in eval mode, so the pass draws no random
    numbers and changes no other state. Under torchrun, ``GlobalBatchNorm`` layers reduce
    each batch over the ranks: every rank must call this with its slice of the same batches.

    Args:
        model: the detector (not its DDP wrapper).
        batches: float tensors (B, C, H, W) as the model takes them in training.

    Returns:
        The number of BatchNorm layers recomputed (0: none, ``batches`` not consumed).
    """
    bns = training_batchnorms(model)
    if not bns:
        return 0
    was_training = model.training
    momenta = [bn.momentum for bn in bns]
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: batch k gets weight 1/k
        bn.train()
    try:
        for x in batches:
            model(x)
    finally:
        for bn, m in zip(bns, momenta, strict=True):
            bn.momentum = m
        model.train(was_training)
    return len(bns)
