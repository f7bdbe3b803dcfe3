"""Network architectures, one per file, chosen through registries: GAN generators and
discriminators (``GENERATORS`` / ``DISCRIMINATORS``, registered when this package is
imported), deepfake detectors (``detectors``, ``DETECTORS``), the export format
(``export_format``), loading of generators and detectors (``generators.loading``,
``detectors.loading``), seeded latents (``latents``) and the small autoencoders of the
generator zoo (``zoo``).
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
