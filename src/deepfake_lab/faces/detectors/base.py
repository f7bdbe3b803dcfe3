"""What every face detector returns, and the shared handling of large images."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import cv2
import numpy as np

#: Names of the five landmarks, in the order of every ``landmarks`` array (YuNet's order).
#: "Right" is the person's right, which appears on the left of the image.
LANDMARK_NAMES = ("right_eye", "left_eye", "nose", "right_mouth", "left_mouth")

#: Images with a shorter side than this (in pixels) are not searched: no detector here finds
#: a face that small.
MIN_IMAGE_SIDE = 8


@dataclass(frozen=True)
class Face:
    """One detected face, in pixel coordinates of the image given to the detector.

    Attributes:
        box: ``(x, y, w, h)`` of the face box, float.
        landmarks: ``(5, 2)`` float32 ``(x, y)`` in :data:`LANDMARK_NAMES` order.
        score: detector confidence; comparable within one detector only.
        landmarks_estimated: True when the landmarks were guessed from the box (and eyes)
            rather than predicted by a landmark model.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float
    landmarks_estimated: bool = False

    @property
    def min_side(self) -> float:
        """The shorter side of the box in pixels (what ``--min-face`` is compared with)."""
        return min(self.box[2], self.box[3])

    def scaled(self, factor: float) -> Face:
        """This face with all coordinates multiplied by ``factor``."""
        x, y, w, h = (float(v) * factor for v in self.box)
        landmarks = (self.landmarks * factor).astype(np.float32)
        return Face((x, y, w, h), landmarks, self.score, self.landmarks_estimated)


class FaceDetector(ABC):
    """Base class: ``detect`` finds faces in an RGB image, most confident first.

    Subclasses implement :meth:`_detect` on an image whose longer side is at most
    ``max_side``; larger images are downscaled with area averaging first and the results
    mapped back, which keeps detection time bounded and lets detectors trained on
    moderate resolutions see large faces at a scale they know.
    """

    #: Set by the registry on ``build``; also used in manifests.
    registry_name: str = "?"

    def __init__(self, max_side: int = 1024) -> None:
        self.max_side = int(max_side)

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in ``image``.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.

        Returns:
            Faces in image pixel coordinates, sorted by score, highest first. Images with
            a side under :data:`MIN_IMAGE_SIDE` px have none (YuNet returns random boxes
            for them), and detections with non-finite coordinates, an empty box or a box
            outside the image are dropped.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        height, width = image.shape[:2]
        if min(height, width) < MIN_IMAGE_SIDE:
            return []
        scale = min(1.0, self.max_side / max(height, width))
        if scale < 1.0:
            small = cv2.resize(
                image,
                (max(1, round(width * scale)), max(1, round(height * scale))),
                interpolation=cv2.INTER_AREA,
            )
            # Map back with the exact per-axis ratio the rounding produced.
            faces = [f.scaled(width / small.shape[1]) for f in self._detect(small)]
        else:
            faces = self._detect(image)
        faces = [f for f in faces if _is_valid(f, width, height)]
        return sorted(faces, key=lambda f: f.score, reverse=True)

    @abstractmethod
    def _detect(self, image: np.ndarray) -> list[Face]:
        """Faces in ``image`` (``(H, W, 3)`` uint8 RGB, longer side <= ``max_side``)."""


def _is_valid(face: Face, width: int, height: int) -> bool:
    """Finite numbers, a non-empty box that overlaps the image."""
    values = np.concatenate([np.asarray(face.box, np.float64), np.ravel(face.landmarks)])
    if not (np.all(np.isfinite(values)) and np.isfinite(face.score)):
        return False
    x, y, w, h = face.box
    return w > 0 and h > 0 and x < width and y < height and x + w > 0 and y + h > 0
