"""Test-time views: a detector may score each image and its mirror image and average the
two logits.

Training flips half the images, so a detector should read a face and its mirror alike,
but a small detector trained on a few hundred faces does not quite, and which of the two
it reads better is a coin toss. On the unseen FaceForensics++ clip the mean of the two
logits read better than the frames alone at nearly every epoch of the SBI-trained
ResNet-20 runs measured (docs/benchmarks.md, "Unseen manipulations"), at the price of a
second forward pass.

The view is part of a detector's calibration: the threshold is fitted on the averaged
logits, so the calibration record names the view (``"tta"``) and every scorer that reads
the record (``detect``, ``eval detector``, video scanning, fusion members, exports, ONNX)
scores the same way; adversarial attacks go through the same mean. Grad-CAM heatmaps
explain the image as it is (one view), not the mean.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from deepfake_lab.errors import UserError

#: Accepted test-time views: ``none`` (the image as it is), ``flip`` (mean of the logits of
#: the image and its left-right mirror image).
TTA_MODES = ("none", "flip")


def check_tta(value: Any, where: str) -> str:
    """``value`` if it names a test-time view (``None``: ``"none"``, as in records written
    before views existed).

    Raises:
        UserError: anything else (records come from files that may come from anyone).
    """
    if value is None:
        return "none"
    if not isinstance(value, str) or value not in TTA_MODES:
        raise UserError(
            # repr escapes control characters; 40 characters say enough of a long one.
            f"{where}: unknown test-time view {value!r:.40}; expected one of: "
            f"{', '.join(TTA_MODES)}"
        )
    return value


def flip_mean(net: nn.Module, x: Tensor) -> Tensor:
    """Mean of ``net``'s logits (B,) on ``x`` (B, 3, H, W) and on its left-right mirror, in
    one batch of 2B (so batch-norm in eval mode and the fused copy see ordinary batches)."""
    both = net(torch.cat([x, torch.flip(x, dims=(-1,))])).float()
    return (both[: x.shape[0]] + both[x.shape[0] :]) / 2


class FlipMean(nn.Module):
    """``net`` scored as :func:`flip_mean` (gradients flow; ``size`` is ``net``'s)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.size = getattr(net, "size", None)
        self.registry_name = getattr(net, "registry_name", type(net).__name__)

    def forward(self, x: Tensor) -> Tensor:
        return flip_mean(self.net, x)


def with_tta(net: nn.Module, tta: str) -> nn.Module:
    """``net`` scored with the test-time view ``tta`` (``net`` itself for ``"none"``)."""
    if check_tta(tta, "test-time view") == "flip":
        return FlipMean(net)
    return net
