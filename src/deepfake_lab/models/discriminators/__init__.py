"""Discriminator architectures; importing this package registers them all."""

from deepfake_lab.models.discriminators import dcgan, fastgan, vae  # noqa: F401
