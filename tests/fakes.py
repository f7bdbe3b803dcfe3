"""Test doubles shared by several test modules (``tests/`` is on pytest's pythonpath)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from deepfake_lab.metrics.features import FeatureExtractor


class TinyFeatures(FeatureExtractor):
    """Test-only space: 4x4 average pooling and a fixed random projection to 6 dims."""

    name = "tiny-test"
    label = "FD-TINY"
    dim = 6
    is_classifier = True

    def __init__(self, weights: Path | None = None) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("proj", torch.randn(48, 6, generator=g) / 48**0.5)
        self.register_buffer("head", torch.randn(6, 4, generator=g))
        self.weights = weights

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x.float(), 4).flatten(1) @ self.proj

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x) @ self.head

    def cache_key(self) -> dict[str, object]:
        return {"name": self.name, "version": 1}


class TinyNonClassifier(TinyFeatures):
    name = "tiny-plain"
    is_classifier = False
