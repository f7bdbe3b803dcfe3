"""Discriminator architectures; importing this package registers them all."""

from deepfake_lab.models.discriminators import dcgan, fastgan, stylegan2, vae  # noqa: F401
