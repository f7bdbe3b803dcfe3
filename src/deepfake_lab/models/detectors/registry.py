"""The registry of detector architectures and the builder the trainer uses."""

from __future__ import annotations

from pathlib import Path
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


def published_detector_spec(source: str | Path) -> tuple[str, str | None] | None:
    """``(name, weights)`` when ``source`` names a detector with released weights
    (``NAME`` or ``NAME:WEIGHTS``, ``WEIGHTS`` a released set or a weights file) and is not an
    existing path; otherwise None."""
    text = str(source)
    if Path(text).exists():
        return None
    name, sep, weights = text.partition(":")
    if name not in DETECTORS or not getattr(DETECTORS.get(name), "published_weights", ()):
        return None
    return name, (weights if sep else None)
