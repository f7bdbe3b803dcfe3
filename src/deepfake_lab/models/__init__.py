"""GAN generator and discriminator architectures.

Importing this package registers every architecture in ``GENERATORS`` / ``DISCRIMINATORS``
(the ``generators`` and ``discriminators`` subpackages register theirs on import).
"""

from deepfake_lab.models import discriminators, generators  # noqa: F401  (registration)
from deepfake_lab.models.base import Discriminator, Generator
from deepfake_lab.models.registry import (
    DISCRIMINATORS,
    GENERATORS,
    build_discriminator,
    build_generator,
)

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "Discriminator",
    "Generator",
    "build_discriminator",
    "build_generator",
]
