"""Face detectors behind one registry: ``FACE_DETECTORS.build("yunet", face_model=...)``.

Every detector takes an ``(H, W, 3)`` uint8 RGB image and returns :class:`Face` objects (box,
five landmarks, score), most confident first.
"""

from deepfake_lab.faces.detectors.base import LANDMARK_NAMES, Face, FaceDetector
from deepfake_lab.registry import Registry

FACE_DETECTORS: Registry[FaceDetector] = Registry("face detector")

# Imported for their registration side effect; they need FACE_DETECTORS defined above.
from deepfake_lab.faces.detectors import haar, yunet  # noqa: E402, F401

__all__ = ["FACE_DETECTORS", "LANDMARK_NAMES", "Face", "FaceDetector"]
