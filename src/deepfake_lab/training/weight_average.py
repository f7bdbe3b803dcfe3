"""Weight averaging for detector training: a uniform average of the weights of every step
from a start epoch on (stochastic weight averaging, Izmailov et al. 2018; dense, every step,
as SWAD, Cha et al. 2021), or an exponential moving average with a half-life in epochs.

Why: a detector trained on pseudo-fakes keeps learning their particular artefacts after it
has learned what carries over to real manipulations, and its validation split (more
pseudo-fakes) cannot tell the two apart. Averaging weights along the trajectory finds flatter
minima, which SWAD showed to generalise better across domains than any single checkpoint,
without choosing an epoch by a test set.

The average lives in a ``torch.optim.swa_utils.AveragedModel``; only parameters are averaged.
BatchNorm statistics of averaged weights must be recomputed (the trainer's precise BN does it
before every validation), so averaging requires ``train.precise_bn_images > 0``.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightAverage:
    """The running weight average of one detector run.

    Args:
        model: the detector being trained (not its DDP wrapper).
        method: ``uniform`` (equal weight to every step from ``start_epoch`` on) or ``ema``.
        steps_per_epoch: training steps in one epoch.
        start_epoch: uniform: steps after this many epochs are averaged (0: from the start).
        half_life_epochs: ema: an update's weight halves after this many epochs.
    """

    def __init__(
        self,
        model: nn.Module,
        method: str,
        steps_per_epoch: int,
        start_epoch: float = 1.0,
        half_life_epochs: float = 1.0,
    ) -> None:
        if method not in ("uniform", "ema"):
            raise ValueError(f"unknown weight average {method!r}")
        self.method = method
        self.start_step = 0 if method == "ema" else math.floor(start_epoch * steps_per_epoch)
        avg_fn = None
        if method == "ema":
            decay = 0.5 ** (1.0 / (half_life_epochs * steps_per_epoch))
            avg_fn = get_ema_multi_avg_fn(decay)
        self.avg = AveragedModel(model, multi_avg_fn=avg_fn, use_buffers=False)

    @property
    def count(self) -> int:
        """Number of steps averaged so far."""
        return int(self.avg.n_averaged.item())

    def update(self, model: nn.Module, step: int) -> None:
        """Fold in ``model``'s weights after training step ``step`` (1 = the first)."""
        if step > self.start_step:
            self.avg.update_parameters(model)

    def eval_model(self, model: nn.Module) -> nn.Module:
        """The network to validate and keep: the average once it holds a step, else
        ``model`` itself (a uniform average before its start epoch)."""
        return self.avg.module if self.count else model

    def state_dict(self) -> dict[str, Any]:
        """Method and count; the averaged weights are ``eval_model``'s, which the trainer's
        checkpoint stores once, as its ``model``."""
        return {"method": self.method, "count": self.count}

    def load_state_dict(self, state: dict[str, Any], weights: dict[str, Any]) -> None:
        """Restore from ``state_dict()`` and the checkpoint's ``model`` (``weights``)."""
        self.avg.n_averaged.fill_(int(state["count"]))
        if self.count:  # before that, ``model`` held the trained weights, not an average
            self.avg.module.load_state_dict(weights)


def check_averaging(method: str, precise_bn_images: int) -> None:
    """Refuse averaging without precise BN (averaged weights with another network's
    BatchNorm statistics score garbage). Raises ValueError."""
    if method != "none" and precise_bn_images == 0:
        raise ValueError(
            f"average.method={method} needs train.precise_bn_images > 0: averaged weights "
            "need BatchNorm statistics of their own"
        )


__all__ = ["WeightAverage", "check_averaging"]
