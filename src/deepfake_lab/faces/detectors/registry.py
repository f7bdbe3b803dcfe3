"""The face-detector registry; each detector module registers itself here on import."""

from __future__ import annotations

from deepfake_lab.faces.detectors.base import FaceDetector
from deepfake_lab.registry import Registry

FACE_DETECTORS: Registry[FaceDetector] = Registry("face detector")
