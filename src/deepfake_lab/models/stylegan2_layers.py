"""Layers of the StyleGAN2-class networks (Karras et al., CVPR 2020): equalised learning rate,
the mapping network, weight-(de)modulated convolutions, noise inputs and skip ToRGB.

Equalised learning rate: weights are stored N(0, 1) and scaled by ``1/sqrt(fan_in)`` at run
time, so Adam's per-parameter steps are alike for every layer whatever its fan-in.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfake_lab import sharded_random
from deepfake_lab.sharded_random import RandomSource

LRELU_GAIN = math.sqrt(2.0)


def lrelu(x: Tensor) -> Tensor:
    """LeakyReLU(0.2) scaled by sqrt(2), keeping activations' variance through layers."""
    return F.leaky_relu(x, 0.2) * LRELU_GAIN


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate; ``lr_mul`` slows it further (mapping net)."""

    def __init__(self, c_in: int, c_out: int, bias_init: float = 0.0, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((c_out,), float(bias_init)))
        self.scale, self.lr_mul = lr_mul / math.sqrt(c_in), lr_mul

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """Conv2d with equalised learning rate."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.scale, self.stride, self.pad = 1 / math.sqrt(c_in * k * k), stride, k // 2

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.pad)


class MappingNetwork(nn.Module):
    """z -> w: pixel-normalised z through ``layers`` equalised linear layers (lr x 0.01)."""

    def __init__(self, z_dim: int, w_dim: int, layers: int = 4) -> None:
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.fcs = nn.ModuleList(EqualLinear(a, b, lr_mul=0.01) for a, b in pairwise(dims))

    def forward(self, z: Tensor) -> Tensor:
        x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        for fc in self.fcs:
            x = lrelu(fc(x))
        return x


class ModulatedConv2d(nn.Module):
    """A convolution whose input channels are scaled per sample by a style from ``w``, with
    weight demodulation (each output channel renormalised to unit expected variance), as one
    grouped convolution over the batch. ``up``: nearest 2x up-sampling first (StyleGAN2 uses a
    transposed convolution and an FIR filter; nearest + 3x3 is the lighter CPU stand-in)."""

    def __init__(
        self, c_in: int, c_out: int, k: int, w_dim: int, demodulate: bool = True, up: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, c_out, c_in, k, k))
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)
        self.scale = 1 / math.sqrt(c_in * k * k)
        self.demodulate, self.up, self.pad = demodulate, up, k // 2

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        b, c_in, h, wd = x.shape
        style = self.affine(w).view(b, 1, c_in, 1, 1)
        weight = self.weight * self.scale * style  # (B, out, in, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            h, wd = h * 2, wd * 2
        out = F.conv2d(
            x.reshape(1, b * c_in, h, wd),
            weight.reshape(-1, c_in, *weight.shape[-2:]),
            padding=self.pad,
            groups=b,
        )
        return out.view(b, -1, h, wd)


class StyledLayer(nn.Module):
    """Modulated 3x3 conv, noise input (a learnt strength per layer), bias, LeakyReLU.

    In training mode the noise is drawn from ``noise_source`` (torch's global RNG unless the
    trainer sets its stream); in eval mode a fixed stored noise image is used, so eval
    outputs are a function of z alone.
    """

    noise_source: RandomSource = None

    def __init__(self, c_in: int, c_out: int, w_dim: int, resolution: int, up: bool) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(c_in, c_out, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(c_out))
        fixed = torch.randn(
            1, 1, resolution, resolution, generator=torch.Generator().manual_seed(resolution)
        )
        self.register_buffer("noise_const", fixed)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        x = self.conv(x, w)
        if self.training:
            noise = sharded_random.randn(
                self.noise_source, x.shape[0], 1, *x.shape[2:], device=x.device
            ).to(x)
        else:
            noise = self.noise_const.to(x.dtype)
        return lrelu(x + noise * self.noise_strength + self.bias.view(1, -1, 1, 1))


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB without demodulation (the skip generator's output branch)."""

    def __init__(self, c_in: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(c_in, 3, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return self.conv(x, w) + self.bias.view(1, -1, 1, 1)


def minibatch_stddev(x: Tensor, group: int = 4) -> Tensor:
    """Append one channel: the standard deviation over groups of samples, averaged (lets D
    see the batch's variety; Karras et al. 2018).

    Groups are runs of ``group`` consecutive samples (the official code strides them; the
    batch is in random order either way), so that splitting a batch over data-parallel
    processes, at multiples of ``group``, leaves every group as it was."""
    b, c, h, w = x.shape
    g = min(group, b)
    while b % g:
        g -= 1
    y = x.reshape(-1, g, c, h, w)
    y = (y.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (B/g,)
    y = y.repeat_interleave(g).view(-1, 1, 1, 1).expand(-1, 1, h, w)
    return torch.cat([x, y], dim=1)
