"""Deepfake detectors: networks that score images as real (low logit) or fake (high logit).

Every detector subclasses ``Detector`` (shared loss, calibrated probabilities, freezing,
initialisation from other checkpoints) and is registered in ``DETECTORS``; importing this
package registers them all:

- ``resnet``: ResNet-18/34 from scratch;
- ``npr``: neighbouring-pixel-relationship residual into a small ResNet (Tan et al. 2024);
- ``spectrum``: azimuthal log power spectrum + logistic regression (Durall et al. 2020);
- ``phase``: how unequal high frequencies are across the positions of a 2x2 / 4x4 grid
  (an up-sampler's period), a two-sided cue for a fusion beside ``npr``;
- ``gan-d``: a GAN discriminator, logit negated;
- ``resnet-cifar``: CIFAR-10 ResNet-20/56 backbone with a new head;
- ``meso4``, ``mesoinception``: MesoNet (Afchar et al. 2018), with the authors' released
  Deepfake and Face2Face weights (``weights="DF"`` / ``"F2F"``);
- ``fusion``: a calibrated logistic stacker over member detectors, with an "uncertain"
  verdict for inputs unlike its fitting data or where members disagree.

Example:
    >>> det = build_detector("npr", size=64)
    >>> det(images).shape  # images (B, 3, 64, 64) in [-1, 1]
    torch.Size([B])
"""

from deepfake_lab.models.detectors import (  # noqa: F401  (registration)
    fusion,
    gan_d,
    meso4,
    mesoinception,
    npr,
    phase,
    resnet,
    resnet_cifar,
    spectrum,
)
from deepfake_lab.models.detectors.base import FREEZE_MODES, Detector, InitReport
from deepfake_lab.models.detectors.gan_d import gan_d_kwargs_from_checkpoint
from deepfake_lab.models.detectors.registry import DETECTORS, build_detector

__all__ = [
    "DETECTORS",
    "FREEZE_MODES",
    "Detector",
    "InitReport",
    "build_detector",
    "gan_d_kwargs_from_checkpoint",
]
