"""Feature extractors: networks that map images to vectors for distribution metrics.

Every extractor is an ``nn.Module`` registered in ``FEATURE_EXTRACTORS`` and exposes

- ``name``: the registry name, e.g. ``"resnet56-cifar"``;
- ``label``: the prefix for metric names measured in its space, e.g. ``"FD-R56"``. A
  Frechet distance is only called "FID" in the Inception-v3 space it was defined for;
  numbers from any other space carry that space's label so they are never mistaken
  for (or compared with) published FIDs;
- ``dim``: the feature width;
- ``features(x)``: float (B, 3, H, W) in [-1, 1] -> float32 (B, dim).

Registered spaces:

- ``inception-v3-fid`` (label FID, 2048-d, 1008-class logits): the FID Inception network,
  the same numbers as torch-fidelity / pytorch-fid given the same weights;
- ``resnet56-cifar`` / ``resnet20-cifar`` (FD-R56 / FD-R20, 64-d): small offline spaces;
- ``torchscript`` (FD-<file stem>): any network saved with ``torch.jit.save`` or
  ``torch.export.save`` (e.g. DINOv2 or CLIP exported where they are available).

Example:
    >>> fx = FEATURE_EXTRACTORS.build("resnet56-cifar", weights=Path("resnet56-4bfd9763.th"))
    >>> fx.features(images).shape
    torch.Size([16, 64])
"""

from __future__ import annotations

# Importing the extractor modules registers them.
from deepfake_lab.metrics.features import inception as _inception  # noqa: F401
from deepfake_lab.metrics.features import resnet_cifar as _resnet_cifar  # noqa: F401
from deepfake_lab.metrics.features import torchscript as _torchscript  # noqa: F401
from deepfake_lab.metrics.features.base import FEATURE_EXTRACTORS, FeatureExtractor

__all__ = ["FEATURE_EXTRACTORS", "FeatureExtractor"]
