"""Registries of generator and discriminator architectures, and the builders the trainer uses."""

from __future__ import annotations

from typing import Any

from deepfake_lab.models.base import Discriminator, Generator
from deepfake_lab.registry import Registry

GENERATORS: Registry[Generator] = Registry("generator")
DISCRIMINATORS: Registry[Discriminator] = Registry("discriminator")


def build_generator(arch: str, **kwargs: Any) -> Generator:
    """Build the generator registered as ``arch``; unknown names raise a UserError.

    Args:
        arch: registry name, e.g. ``"dcgan"`` or ``"fastgan"``.
        **kwargs: constructor arguments (``size``, ``z_dim``, ``channels``, ``max_channels``).
    """
    return GENERATORS.build(arch, **kwargs)


def build_discriminator(arch: str, **kwargs: Any) -> Discriminator:
    """Build the discriminator registered as ``arch``; unknown names raise a UserError.

    Args:
        arch: registry name, e.g. ``"dcgan"`` or ``"fastgan"``.
        **kwargs: constructor arguments (``size``, ``channels``, ``max_channels``).
    """
    return DISCRIMINATORS.build(arch, **kwargs)
