"""Variational autoencoder generator (Kingma & Welling, 2014) for VAE-GAN training (Larsen et
al., 2016): the DCGAN generator as decoder, a mirrored convolutional encoder to a Gaussian
posterior. ``forward`` decodes latents, so sampling, export and metrics treat it as any
generator; :meth:`VAEGenerator.autoencode` is what training adds.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from deepfake_lab import sharded_random
from deepfake_lab.models.base import Generator, check_positive, check_size
from deepfake_lab.models.generators.dcgan import SIZES, DCGANGenerator
from deepfake_lab.models.layers import init_dcgan_
from deepfake_lab.models.registry import GENERATORS
from deepfake_lab.sharded_random import RandomSource

#: log-variances are clamped to this range: a posterior that collapses or explodes would make
#: the KL term non-finite long before the weights are useless.
LOGVAR_RANGE = (-30.0, 20.0)


@GENERATORS.register("vae")
class VAEGenerator(Generator):
    """Encoder ``x -> (mu, log sigma^2)`` and decoder ``z -> x``.

    The encoder mirrors the DCGAN discriminator (stride-2 4x4 convs, BatchNorm after all but
    the first, LeakyReLU(0.2)) down to 4x4, then one linear layer to ``2 * z_dim``. The decoder
    is :class:`DCGANGenerator` with the same widths.

    Args:
        size: image side, one of 16, 32, 64, 128, 256.
        z_dim: latent length.
        channels: width at resolution size/2 (encoder and decoder).
        max_channels: cap on any layer's width.
    """

    def __init__(
        self, size: int, z_dim: int = 128, channels: int = 64, max_channels: int = 512
    ) -> None:
        check_size("vae", size, SIZES)
        check_positive("vae", z_dim=z_dim, channels=channels, max_channels=max_channels)
        super().__init__(size, z_dim)

        def width(r: int) -> int:
            return min(max_channels, channels * size // (2 * r))

        r = size // 2
        layers: list[nn.Module] = [nn.Conv2d(3, width(r), 4, 2, 1), nn.LeakyReLU(0.2)]
        while r > 4:
            layers += [
                nn.Conv2d(width(r), width(r // 2), 4, 2, 1, bias=False),
                nn.BatchNorm2d(width(r // 2)),
                nn.LeakyReLU(0.2),
            ]
            r //= 2
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        self.to_posterior = nn.Linear(width(4) * 16, 2 * z_dim)
        self.encoder.apply(init_dcgan_)
        self.decoder = DCGANGenerator(size, z_dim, channels, max_channels)

    def forward(self, z: Tensor) -> Tensor:
        """``z``: ``(B, z_dim)`` -> images ``(B, 3, size, size)`` in [-1, 1]."""
        return self.decoder(z)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior ``(mu, logvar)``, each ``(B, z_dim)``, of images ``x`` in [-1, 1]."""
        mu, logvar = self.to_posterior(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def autoencode(self, x: Tensor, generator: RandomSource) -> tuple[Tensor, Tensor]:
        """Reconstructions of ``x`` from one posterior sample each (the reparameterisation
        trick, noise from ``generator``), and ``KL(q(z|x) || N(0, I))`` per image ``(B,)``."""
        mu, logvar = self.encode(x)
        eps = sharded_random.randn(generator, *mu.shape, device=mu.device).to(mu)
        z = mu + torch.exp(0.5 * logvar) * eps
        kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(dim=1)
        return self.decoder(z), kl

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """The decoded posterior means of images ``x`` (deterministic: no sampling)."""
        return self.decoder(self.encode(x)[0])
