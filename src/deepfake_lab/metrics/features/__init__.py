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

from typing import ClassVar

import torch
from torch import nn

from deepfake_lab.registry import Registry


class FeatureExtractor(nn.Module):
    """Base class: a frozen network in eval mode that turns images into feature vectors."""

    name: ClassVar[str]
    label: ClassVar[str]
    dim: ClassVar[int]
    #: True when ``logits`` gives class scores (needed by the Inception Score).
    is_classifier: ClassVar[bool] = False

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Features of images.

        Args:
            x: float (B, 3, H, W) in [-1, 1], any H, W.

        Returns:
            float32 (B, dim) on the module's device.
        """
        raise NotImplementedError

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes) for classifier extractors (``is_classifier``)."""
        raise NotImplementedError(f"{self.name} is not a classifier")

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features(x), logits(x))``; classifiers override it to share one pass."""
        return self.features(x), self.logits(x)

    def cache_key(self) -> dict[str, object]:
        """What identifies this feature space, for caching statistics: the name plus whatever
        changes the numbers (weights fingerprint, input resolution and resize method).
        Subclasses extend it."""
        return {"name": self.name}

    def train(self, mode: bool = True) -> FeatureExtractor:
        # A feature space must not change with the caller's mode: batch-statistics
        # BatchNorm would make every feature depend on the rest of the batch.
        return super().train(False)


FEATURE_EXTRACTORS: Registry[FeatureExtractor] = Registry("feature extractor")

# Registration happens on import of the modules that define extractors.
from deepfake_lab.metrics.features import inception as _inception  # noqa: E402, F401
from deepfake_lab.metrics.features import resnet_cifar as _resnet_cifar  # noqa: E402, F401
from deepfake_lab.metrics.features import torchscript as _torchscript  # noqa: E402, F401

__all__ = ["FEATURE_EXTRACTORS", "FeatureExtractor"]
