"""The discriminator of VAE-GAN training: the DCGAN discriminator, under the ``vae`` name so
that ``--arch vae`` picks both halves from the registries like every architecture."""

from __future__ import annotations

from deepfake_lab.models.discriminators.dcgan import DCGANDiscriminator
from deepfake_lab.models.registry import DISCRIMINATORS


@DISCRIMINATORS.register("vae")
class VAEDiscriminator(DCGANDiscriminator):
    """:class:`DCGANDiscriminator` (same arguments), judging the VAE's prior samples."""

    ARCH = "vae"
