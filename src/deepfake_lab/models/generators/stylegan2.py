"""StyleGAN2-class generator (Karras et al., CVPR 2020), sized for CPU training at 32-64 px
and GPU training at 128-256 px.

z -> mapping network -> w (one per layer) -> synthesis from a learnt 4x4 constant through
weight-demodulated 3x3 convolutions with noise inputs, doubling the resolution per block,
with a skip-connected RGB output summed across resolutions. In training mode, style mixing
regularisation feeds a second latent's w to the layers after a random crossover point, and a
running mean of w (``w_avg``) is tracked for truncation in W (:meth:`sample`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfake_lab import sharded_random
from deepfake_lab.models.base import Generator, check_positive, check_size
from deepfake_lab.models.registry import GENERATORS
from deepfake_lab.models.stylegan2_layers import MappingNetwork, StyledLayer, ToRGB
from deepfake_lab.sharded_random import RandomSource

SIZES = (16, 32, 64, 128, 256)
#: Decay of the running mean of w (StyleGAN2's w_avg_beta).
W_AVG_BETA = 0.995


@GENERATORS.register("stylegan2")
class StyleGAN2Generator(Generator):
    """Mapping network, modulated synthesis network, skip ToRGB.

    With :meth:`set_resolution` (progressive training) synthesis stops at that resolution,
    its RGB added to the up-sampled RGB below with weight ``alpha``.

    Widths: the block at resolution ``r`` has ``min(max_channels, channels * size / r)``
    channels (``channels``: the width at the output resolution).

    Args:
        size: output resolution, one of 16, 32, 64, 128, 256.
        z_dim: latent length (w has the same length).
        channels: width at the output resolution.
        max_channels: cap on any layer's width.
        mapping_layers: depth of the mapping network.
        mixing_prob: share of training batches whose samples mix two latents' styles.
    """

    supports_progressive = True  # the skip RGB outputs make every resolution an output
    noise_source: RandomSource = None  # style mixing's draws (see Generator.set_noise_source)

    def __init__(
        self,
        size: int,
        z_dim: int = 128,
        channels: int = 32,
        max_channels: int = 256,
        mapping_layers: int = 4,
        mixing_prob: float = 0.9,
    ) -> None:
        check_size("stylegan2", size, SIZES)
        check_positive(
            "stylegan2",
            z_dim=z_dim,
            channels=channels,
            max_channels=max_channels,
            mapping_layers=mapping_layers,
        )
        super().__init__(size, z_dim)

        def width(r: int) -> int:
            return min(max_channels, channels * size // r)

        self.mixing_prob = float(mixing_prob)
        self.mapping = MappingNetwork(z_dim, z_dim, mapping_layers)
        self.register_buffer("w_avg", torch.zeros(z_dim))
        self.const = nn.Parameter(torch.randn(1, width(4), 4, 4))
        self.layers = nn.ModuleList([StyledLayer(width(4), width(4), z_dim, 4, up=False)])
        self.to_rgbs = nn.ModuleList([ToRGB(width(4), z_dim)])
        r = 4
        while r < size:
            r *= 2
            self.layers.append(StyledLayer(width(r // 2), width(r), z_dim, r, up=True))
            self.layers.append(StyledLayer(width(r), width(r), z_dim, r, up=False))
            self.to_rgbs.append(ToRGB(width(r), z_dim))
        # Each w feeds one StyledLayer and, at the end of a resolution, that block's ToRGB.
        self.num_ws = len(self.layers)

    def mapping_ws(self, z: Tensor) -> Tensor:
        """w per layer, ``(B, num_ws, z_dim)``: one w broadcast, or in training mode two
        latents' ws crossed over at a random layer for ``mixing_prob`` of the samples."""
        w = self.mapping(z)
        if self.training:
            with torch.no_grad():  # the running mean of w, for truncation at sampling time
                # Over the global batch (reduced across data-parallel ranks). Cast to the
                # buffer's fp32: under autocast w is bf16, and lerp_ wants one dtype.
                self.w_avg.lerp_(
                    sharded_random.global_batch_mean(w).to(self.w_avg.dtype), 1 - W_AVG_BETA
                )
        ws = w[:, None].repeat(1, self.num_ws, 1)
        if self.training and self.mixing_prob > 0:
            b, src = z.shape[0], self.noise_source
            z2 = sharded_random.randn(src, b, z.shape[1], device=z.device).to(z)
            w2 = self.mapping(z2)[:, None]
            cut = sharded_random.randint(src, 1, self.num_ws, b, device=z.device)
            cut = cut.to(z.device).view(b, 1, 1)
            mix = sharded_random.rand(src, b, device=z.device).to(z.device).view(b, 1, 1)
            mix = mix < self.mixing_prob
            layer = torch.arange(self.num_ws, device=z.device).view(1, -1, 1)
            ws = torch.where(mix & (layer >= cut), w2, ws)
        return ws

    def synthesis(self, ws: Tensor) -> Tensor:
        """Images ``(B, 3, size, size)`` in [-1, 1] from per-layer ws ``(B, num_ws, z_dim)``."""
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        x = self.layers[0](x, ws[:, 0])
        rgb = self.to_rgbs[0](x, ws[:, 0])
        blocks = max(0, self.res.bit_length() - 3)  # 4 px: 0 blocks, 8 px: 1, ...
        for i in range(1, blocks + 1):
            a, b = 2 * i - 1, 2 * i
            x = self.layers[a](x, ws[:, a])
            x = self.layers[b](x, ws[:, b])
            rgb = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False)
            fade = self.alpha if i == blocks else 1.0  # the newest resolution fades in
            rgb = rgb + fade * self.to_rgbs[i](x, ws[:, b])
        out = torch.tanh(rgb)
        if out.shape[-1] < self.size:  # progressive: shown at full size, blocky
            out = F.interpolate(out, size=self.size, mode="nearest")
        return out

    def forward(self, z: Tensor) -> Tensor:
        """``z``: ``(B, z_dim)`` -> images ``(B, 3, size, size)`` in [-1, 1]."""
        return self.synthesis(self.mapping_ws(z))

    def sample(self, z: Tensor, truncation: float = 1.0) -> Tensor:
        """Images with truncation in W: ``w_avg + psi * (w - w_avg)`` (psi = 1: no change)."""
        ws = self.mapping_ws(z)
        if truncation != 1.0:
            ws = self.w_avg.lerp(ws, truncation)
        return self.synthesis(ws)

    def style_mix(
        self, z_a: Tensor, z_b: Tensor, crossover: int, truncation: float = 1.0
    ) -> Tensor:
        """``z_a``'s coarse styles (layers before ``crossover``) with ``z_b``'s fine ones."""
        wa, wb = self.mapping(z_a), self.mapping(z_b)
        if truncation != 1.0:
            wa, wb = self.w_avg.lerp(wa, truncation), self.w_avg.lerp(wb, truncation)
        layer = torch.arange(self.num_ws, device=z_a.device).view(1, -1, 1)
        ws = torch.where(layer < crossover, wa[:, None], wb[:, None])
        return self.synthesis(ws)
