"""Small autoencoders for the generator zoo (:mod:`deepfake_lab.data.zoo`).

Every zoo family is one :class:`ZooAutoencoder`: the same encoder shape (strided convolutions
from ``size`` px down to a ``size/16`` px latent) and a decoder of four 2x up-sampling stages
that differ only in *how* they up-sample (:data:`UPSAMPLERS`) and whether they normalise
(:data:`NORMS`). Up-sampling is where CNN generators leave their spectral fingerprint
(checkerboards of transposed convolutions, the blockiness of nearest-neighbour, the
low-pass of bilinear, the sub-pixel phases of pixel shuffle), so a detector trained on some
of these families can be tested on the ones it never saw.

Both registries map a name to a builder; a new up-sampler is one ``@UPSAMPLERS.register``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from deepfake_lab.registry import Registry

#: Up-sampler builders ``(c_in, c_out) -> module`` that double height and width.
UPSAMPLERS: Registry[nn.Module] = Registry("zoo up-sampler")
#: Normalisation builders ``(channels) -> module`` used after each up-sampling stage.
NORMS: Registry[nn.Module] = Registry("zoo normalisation")

#: Up-sampling stages of the decoder (and strided stages of the encoder): latent = size / 16.
STAGES = 4
BASE_WIDTH = 16
MAX_WIDTH = 64


@UPSAMPLERS.register("tconv")
def _tconv(c_in: int, c_out: int) -> nn.Module:
    """Transposed convolution, kernel 4, stride 2 (DCGAN): uneven kernel overlap."""
    return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)


@UPSAMPLERS.register("nearest")
def _nearest(c_in: int, c_out: int) -> nn.Module:
    """Nearest-neighbour 2x, then a 3x3 convolution."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1)
    )


@UPSAMPLERS.register("bilinear")
def _bilinear(c_in: int, c_out: int) -> nn.Module:
    """Bilinear 2x (half-pixel centres), then a 3x3 convolution."""
    up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    return nn.Sequential(up, nn.Conv2d(c_in, c_out, 3, 1, 1))


@UPSAMPLERS.register("pixelshuffle")
def _pixelshuffle(c_in: int, c_out: int) -> nn.Module:
    """A 3x3 convolution to 4x the channels, then PixelShuffle(2) (sub-pixel convolution)."""
    return nn.Sequential(nn.Conv2d(c_in, 4 * c_out, 3, 1, 1), nn.PixelShuffle(2))


@NORMS.register("bn")
def _batchnorm(channels: int) -> nn.Module:
    """BatchNorm2d (running statistics at inference, so an image does not depend on its batch)."""
    return nn.BatchNorm2d(channels)


@NORMS.register("none")
def _no_norm(channels: int) -> nn.Module:
    """No normalisation."""
    return nn.Identity()


def widths(stages: int = STAGES) -> list[int]:
    """Channels at each resolution level, from full size (level 0) to the latent."""
    return [min(MAX_WIDTH, BASE_WIDTH * 2**i) for i in range(stages + 1)]


def check_size(size: int) -> None:
    """Raise ValueError unless ``size`` is a multiple of ``2**STAGES`` in [16, 1024]."""
    if not 16 <= size <= 1024 or size % 2**STAGES:
        raise ValueError(f"size must be a multiple of {2**STAGES} in [16, 1024], got {size}")


class ZooAutoencoder(nn.Module):
    """Encoder (fixed shape) + decoder with the given up-sampler and normalisation.

    Args:
        size: image side in px (a multiple of 16); the latent is ``size / 16`` px.
        upsampler: a name in :data:`UPSAMPLERS`.
        norm: a name in :data:`NORMS`.

    Input and output are float (N, 3, size, size) in [-1, 1] (the output through tanh).
    """

    def __init__(self, size: int, upsampler: str, norm: str) -> None:
        super().__init__()
        check_size(size)
        up: Callable[[int, int], nn.Module] = UPSAMPLERS.get(upsampler)
        normalise: Callable[[int], nn.Module] = NORMS.get(norm)
        w = widths()
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        enc: list[nn.Module] = [nn.Conv2d(3, w[0], 3, 1, 1), act()]
        for i in range(STAGES):
            enc += [nn.Conv2d(w[i], w[i + 1], 4, stride=2, padding=1), act()]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = []
        for i in range(STAGES, 0, -1):
            dec += [up(w[i], w[i - 1]), normalise(w[i - 1]), act()]
        dec += [nn.Conv2d(w[0], 3, 3, 1, 1), nn.Tanh()]
        self.decoder = nn.Sequential(*dec)
        self.size, self.upsampler, self.norm = size, upsampler, norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def describe(size: int, upsampler: str, norm: str) -> str:
    """One line saying what the autoencoder of a family is, for ``zoo.json``."""
    w = widths()
    latent = size // 2**STAGES
    return (
        f"encoder: 3x3 conv to {w[0]} ch, {STAGES} x [4x4 conv stride 2, LeakyReLU(0.2)] to "
        f"{w[-1]}x{latent}x{latent}; decoder: {STAGES} x [{upsampler} 2x up "
        f"({' -> '.join(str(c) for c in reversed(w))} ch), {norm} norm, LeakyReLU(0.2)], "
        f"3x3 conv to RGB, tanh; {size} px"
    )
