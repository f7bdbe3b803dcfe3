"""Building blocks shared by two or more architectures (weight init, spectral-normed convs,
noise injection, skip-layer excitation, FastGAN's up-sampling block)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from deepfake_lab import sharded_random
from deepfake_lab.sharded_random import RandomSource

#: Standard deviation of the N(0, std) weight init of Radford et al. (2015), also used by FastGAN.
INIT_STD = 0.02


def init_dcgan_(module: nn.Module) -> None:
    """DCGAN init, for ``model.apply``: conv weights N(0, 0.02), BatchNorm scale N(1, 0.02).

    Spectral-normed convolutions are skipped: ``sn_conv2d`` initialises them before the
    parametrisation is attached, so that its power-iteration vectors match the weights.
    """
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        if parametrize.is_parametrized(module, "weight"):
            return
        nn.init.normal_(module.weight, 0.0, INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, INIT_STD)
        nn.init.zeros_(module.bias)


def sn_conv2d(
    in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0, bias: bool = False
) -> nn.Conv2d:
    """A spectral-normalised ``Conv2d`` with N(0, 0.02) initial weights (bias-free by default,
    since every such conv in FastGAN is followed by BatchNorm or feeds a logit/image)."""
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=bias)
    init_dcgan_(conv)
    return spectral_norm(conv)


def sn_conv_transpose2d(
    in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0, bias: bool = False
) -> nn.ConvTranspose2d:
    """A spectral-normalised ``ConvTranspose2d`` with N(0, 0.02) initial weights."""
    conv = nn.ConvTranspose2d(in_ch, out_ch, kernel, stride, padding, bias=bias)
    init_dcgan_(conv)
    return spectral_norm(conv)


class NoiseInjection(nn.Module):
    """Adds ``weight * noise`` with one noise value per pixel, shared across channels.

    In training mode the noise is fresh N(0, 1) from ``noise_source`` (torch's global RNG
    unless the trainer sets its stream: ``Generator.set_noise_source``). In eval mode a fixed
    noise map stored as a buffer is used instead (StyleGAN2's "const" noise), so that
    ``G.eval()(z)`` is a deterministic function of ``z`` and survives a ``state_dict`` round
    trip.

    Args:
        resolution: spatial size of the feature maps this layer sees.
    """

    noise_source: RandomSource = None

    def __init__(self, resolution: int) -> None:
        super().__init__()
        # Zero init, as in FastGAN: the network learns how much noise each layer wants.
        self.weight = nn.Parameter(torch.zeros(1))
        self.register_buffer("const_noise", torch.randn(1, 1, resolution, resolution))

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, C, H, W)`` with H = W = resolution; returns the same shape."""
        if self.training:
            b, _, h, w = x.shape
            noise = sharded_random.randn(self.noise_source, b, 1, h, w, device=x.device).to(x)
        else:
            noise = self.const_noise.to(x.dtype)
        return x + self.weight * noise


class SkipLayerExcitation(nn.Module):
    """FastGAN's skip-layer excitation: channel gates computed from one feature map
    (``source``, any resolution >= 4) multiply another (``target``).

    Args:
        source_ch: channels of the source map.
        target_ch: channels of the target map.
    """

    def __init__(self, source_ch: int, target_ch: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            sn_conv2d(source_ch, target_ch, 4),  # 4x4 -> 1x1
            nn.SiLU(),  # "Swish" in the paper
            sn_conv2d(target_ch, target_ch, 1),
            nn.Sigmoid(),
        )

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        """``source``: ``(B, source_ch, h, w)``; ``target``: ``(B, target_ch, H, W)`` -> same
        shape as ``target``, each channel scaled by a gate in (0, 1)."""
        return target * self.gate(source)


class UpBlock(nn.Sequential):
    """FastGAN's light up-sampling block: nearest x2, 3x3 conv, BatchNorm, GLU.

    The conv produces ``2 * out_ch`` channels and the GLU halves them, so the block maps
    ``(B, in_ch, H, W)`` to ``(B, out_ch, 2H, 2W)``.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"),
            sn_conv2d(in_ch, out_ch * 2, 3, padding=1),
            nn.BatchNorm2d(out_ch * 2),
            nn.GLU(dim=1),
        )
