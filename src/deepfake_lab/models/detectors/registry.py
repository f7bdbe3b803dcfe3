"""The registry of detector architectures and the builder the trainer uses."""

from __future__ import annotations

from typing import Any

from deepfake_lab.models.detectors.base import Detector
from deepfake_lab.registry import Registry

DETECTORS: Registry[Detector] = Registry("detector")


def build_detector(name: str, **kwargs: Any) -> Detector:
    """Build the detector registered as ``name``; unknown names raise a UserError.

    Args:
        name: registry name, e.g. ``"resnet"``, ``"npr"``, ``"spectrum"``, ``"gan-d"``,
            ``"resnet-cifar"``.
        **kwargs: the detector's constructor arguments (plain JSON values).
    """
    return DETECTORS.build(name, **kwargs)
