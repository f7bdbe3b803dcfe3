"""StyleGAN2-class discriminator (Karras et al., CVPR 2020): residual blocks with equalised
learning rate down to 4x4, minibatch standard deviation, then a small head to one logit."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfake_lab.models.base import Discriminator, check_positive, check_size
from deepfake_lab.models.registry import DISCRIMINATORS
from deepfake_lab.models.stylegan2_layers import (
    EqualConv2d,
    EqualLinear,
    lrelu,
    minibatch_stddev,
)

SIZES = (16, 32, 64, 128, 256)


class ResBlock(nn.Module):
    """Two 3x3 convs then 2x average-pool down, plus a 1x1 skip, summed / sqrt(2)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = EqualConv2d(c_in, c_in, 3)
        self.conv2 = EqualConv2d(c_in, c_out, 3)
        self.skip = EqualConv2d(c_in, c_out, 1, bias=False)
        self.act = nn.LeakyReLU(0.2)  # a module, so that features() can tap it

    def forward(self, x: Tensor) -> Tensor:
        y = self.act(self.conv1(x)) * math.sqrt(2)
        y = F.avg_pool2d(self.act(self.conv2(y)) * math.sqrt(2), 2)
        return (y + self.skip(F.avg_pool2d(x, 2))) / math.sqrt(2)


@DISCRIMINATORS.register("stylegan2")
class StyleGAN2Discriminator(Discriminator):
    """Residual discriminator.

    Args:
        size: input resolution, one of 16, 32, 64, 128, 256.
        channels: width at the input resolution (doubling per halving, capped).
        max_channels: cap on any layer's width.
    """

    supports_progressive = True

    def __init__(
        self, size: int, channels: int = 32, max_channels: int = 256, progressive: bool = False
    ) -> None:
        check_size("stylegan2", size, SIZES)
        check_positive("stylegan2", channels=channels, max_channels=max_channels)
        super().__init__(size)

        def width(r: int) -> int:
            return min(max_channels, channels * size // r)

        self.from_rgb = EqualConv2d(3, width(size), 1)
        # Progressive training reads lower resolutions through their own 1x1 convs.
        self.from_rgbs = nn.ModuleDict(
            {str(r): EqualConv2d(3, width(r), 1) for r in (4 * 2**i for i in range(8)) if r < size}
            if progressive
            else {}
        )
        blocks = []
        r = size
        while r > 4:
            blocks.append(ResBlock(width(r), width(r // 2)))
            r //= 2
        self.blocks = nn.Sequential(*blocks)
        self.head_conv = EqualConv2d(width(4) + 1, width(4), 3)
        self.head_fc = EqualLinear(width(4) * 16, width(4))
        self.out = EqualLinear(width(4), 1)

    def _from_rgb(self, x: Tensor, res: int) -> Tensor:
        if res < self.size:
            x = F.avg_pool2d(x, self.size // res)
        conv = self.from_rgb if res == self.size else self.from_rgbs[str(res)]
        return lrelu(conv(x))

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, 3, size, size)`` in [-1, 1] -> logits ``(B,)``."""
        res = self.res
        first = (self.size // res).bit_length() - 1  # the block that reads ``res`` px
        h = self._from_rgb(x, res)
        if res > 4 and self.alpha < 1.0:  # fade in: blend with the resolution below
            h = torch.lerp(self._from_rgb(x, res // 2), self.blocks[first](h), self.alpha)
            first += 1
        for block in self.blocks[first:]:
            h = block(h)
        h = lrelu(self.head_conv(minibatch_stddev(h)))
        return self.out(lrelu(self.head_fc(h.flatten(1)))).reshape(-1)
