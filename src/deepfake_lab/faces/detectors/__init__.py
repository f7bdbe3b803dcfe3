"""Face detectors behind one registry: ``FACE_DETECTORS.build("yunet", face_model=...)``.

Every detector takes an ``(H, W, 3)`` uint8 RGB image and returns :class:`Face` objects (box,
five landmarks, score), most confident first.
"""

import inspect
from pathlib import Path
from typing import Any

from deepfake_lab.errors import UserError
from deepfake_lab.faces.detectors import haar, yunet  # noqa: F401  (registration)
from deepfake_lab.faces.detectors.base import LANDMARK_NAMES, Face, FaceDetector
from deepfake_lab.faces.detectors.registry import FACE_DETECTORS


def build_face_detector(name: str, face_model: Path | str | None = None) -> FaceDetector:
    """The detector registered as ``name``, with its model file when it takes one.

    Raises:
        UserError: an unknown name, a ``face_model`` for a detector without one, or a model
            that cannot be found or loaded.
    """
    factory = FACE_DETECTORS.get(name)
    kwargs: dict[str, Any] = {}
    if face_model is not None:
        if "face_model" not in inspect.signature(factory).parameters:
            raise UserError(f"--face-model applies to yunet only, not to the {name} detector")
        kwargs["face_model"] = face_model
    return FACE_DETECTORS.build(name, **kwargs)


__all__ = ["FACE_DETECTORS", "LANDMARK_NAMES", "Face", "FaceDetector", "build_face_detector"]
