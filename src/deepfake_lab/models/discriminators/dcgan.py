"""DCGAN discriminator (Radford, Metz & Chintala, 2015), as in the PyTorch DCGAN example."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfake_lab.models.base import Discriminator, check_positive, check_size
from deepfake_lab.models.layers import init_dcgan_
from deepfake_lab.models.registry import DISCRIMINATORS

SIZES = (16, 32, 64, 128, 256)


@DISCRIMINATORS.register("dcgan")
class DCGANDiscriminator(Discriminator):
    """Stride-2 4x4 convs + BatchNorm (not after the first) + LeakyReLU(0.2) down to 4x4, then
    a 4x4 conv to one logit. No biases, as in the example.

    The feature map at resolution ``r`` (size/2 .. 4) has ``min(max_channels,
    channels * size / (2 r))`` channels: ``channels`` is the width of the first layer (``ndf``)
    and the width doubles per halving. At 64 px with ``channels=64`` this is the example's
    3-64-128-256-512-1 network exactly (without the final sigmoid: we return logits).

    BatchNorm keeps running statistics as usual; note that with BatchNorm the R1 gradient of one
    sample depends on the rest of the batch, which is harmless in practice.

    Args:
        size: input resolution, one of 16, 32, 64, 128, 256.
        channels: width at resolution size/2.
        max_channels: cap on any layer's width.
    """

    #: The architecture's name in error messages (subclasses registered under another name
    #: set theirs).
    ARCH = "dcgan"
    supports_progressive = True

    def __init__(
        self, size: int, channels: int = 64, max_channels: int = 512, progressive: bool = False
    ) -> None:
        check_size(self.ARCH, size, SIZES)
        check_positive(self.ARCH, channels=channels, max_channels=max_channels)
        super().__init__(size)

        def width(r: int) -> int:
            return min(max_channels, channels * size // (2 * r))

        r = size // 2
        layers: list[nn.Module] = [
            nn.Conv2d(3, width(r), 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        while r > 4:
            layers += [
                nn.Conv2d(width(r), width(r // 2), 4, 2, 1, bias=False),
                nn.BatchNorm2d(width(r // 2)),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            r //= 2
        layers.append(nn.Conv2d(width(4), 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)
        # Progressive training reads lower resolutions through 1x1 convs from RGB.
        self.from_rgbs = nn.ModuleDict(
            {
                str(q): nn.Sequential(nn.Conv2d(3, width(q), 1), nn.LeakyReLU(0.2))
                for q in SIZES + (4, 8)
                if q < size
            }
            if progressive
            else {}
        )
        self.apply(init_dcgan_)

    def _enter(self, x: Tensor, res: int) -> tuple[Tensor, int]:
        """Features of ``x`` read at ``res`` px, and the index in ``main`` that continues."""
        if res == self.size:
            return self.main[1](self.main[0](x)), 2
        h = self.from_rgbs[str(res)](F.avg_pool2d(x, self.size // res))
        # main: [conv, lrelu] (size -> size/2), then a triplet per halving down to 4 px.
        return h, 2 + 3 * ((self.size // 2 // res).bit_length() - 1)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, 3, size, size)`` in [-1, 1] -> logits ``(B,)``."""
        if self.res >= self.size and self.alpha >= 1.0:
            return self.main(x).reshape(-1)
        h, i = self._enter(x, self.res)
        if self.alpha < 1.0 and self.res > 4:  # fade in over the resolution below
            if self.res < self.size:  # the newest resolution's own halving first
                h = self.main[i + 2](self.main[i + 1](self.main[i](h)))
            low, i = self._enter(x, self.res // 2)
            h = torch.lerp(low, h, self.alpha)
        return self.main[i:](h).reshape(-1)
