"""The feature-extractor base class and registry; each extractor module registers itself
here on import (:mod:`deepfake_lab.metrics.features` imports them all)."""

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
