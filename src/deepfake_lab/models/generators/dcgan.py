"""DCGAN generator (Radford, Metz & Chintala, 2015), as in the PyTorch DCGAN example."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfake_lab.models.base import Generator, check_positive, check_size
from deepfake_lab.models.layers import init_dcgan_
from deepfake_lab.models.registry import GENERATORS

SIZES = (16, 32, 64, 128, 256)


@GENERATORS.register("dcgan")
class DCGANGenerator(Generator):
    """z -> 4x4 (transposed 4x4 conv), then stride-2 transposed convs + BatchNorm + ReLU up to
    ``size``; the last one outputs RGB through tanh. No biases (BatchNorm follows every conv).

    The feature map at resolution ``r`` (4 .. size/2) has ``min(max_channels,
    channels * size / (2 r))`` channels: ``channels`` is the width of the last hidden layer
    (``ngf`` in the PyTorch example) and the width doubles per halving of resolution. At
    64 px with ``channels=64`` this is the example's 512-256-128-64-3 network exactly.

    Args:
        size: output resolution, one of 16, 32, 64, 128, 256.
        z_dim: latent length (the example's ``nz``).
        channels: width at resolution size/2.
        max_channels: cap on any layer's width.
    """

    supports_progressive = True

    def __init__(
        self,
        size: int,
        z_dim: int = 128,
        channels: int = 64,
        max_channels: int = 512,
        progressive: bool = False,
    ) -> None:
        check_size("dcgan", size, SIZES)
        check_positive("dcgan", z_dim=z_dim, channels=channels, max_channels=max_channels)
        super().__init__(size, z_dim)

        def width(r: int) -> int:
            return min(max_channels, channels * size // (2 * r))

        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, width(4), 4, 1, 0, bias=False),
            nn.BatchNorm2d(width(4)),
            nn.ReLU(inplace=True),
        ]
        r = 4
        while r < size // 2:
            layers += [
                nn.ConvTranspose2d(width(r), width(2 * r), 4, 2, 1, bias=False),
                nn.BatchNorm2d(width(2 * r)),
                nn.ReLU(inplace=True),
            ]
            r *= 2
        layers += [nn.ConvTranspose2d(width(r), 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        # Progressive training shows the lower resolutions through 1x1 convs to RGB.
        self.to_rgbs = nn.ModuleDict(
            {str(q): nn.Conv2d(width(q), 3, 1) for q in SIZES + (4, 8) if q < size}
            if progressive
            else {}
        )
        self.apply(init_dcgan_)

    def forward(self, z: Tensor) -> Tensor:
        """``z``: ``(B, z_dim)`` -> images ``(B, 3, size, size)`` in [-1, 1]."""
        x = z.reshape(z.shape[0], self.z_dim, 1, 1)
        if self.res >= self.size and self.alpha >= 1.0:
            return self.main(x)
        # Progressive: each triplet (conv, BN, ReLU) doubles the resolution from 4 px.
        feats: dict[int, Tensor] = {}
        r = 4
        for i in range(0, len(self.main) - 2, 3):
            x = self.main[i + 2](self.main[i + 1](self.main[i](x)))
            feats[r] = x
            if r >= self.res:
                break
            r *= 2
        if self.res >= self.size:
            new = self.main[-1](self.main[-2](x))
            low = feats[self.size // 2]
        else:
            new = torch.tanh(self.to_rgbs[str(self.res)](feats[self.res]))
            low = feats.get(self.res // 2)
        if self.alpha < 1.0 and low is not None:
            old = torch.tanh(self.to_rgbs[str(low.shape[-1])](low))
            new = torch.lerp(F.interpolate(old, scale_factor=2, mode="nearest"), new, self.alpha)
        return F.interpolate(new, size=self.size, mode="nearest") if self.res < self.size else new
