"""Haar cascades bundled with OpenCV: a zero-download fallback face detector.

Haar cascades give boxes only, so the five landmarks are estimated, and every face says so
(``landmarks_estimated=True``, recorded in the manifest):

* All five points start at the mean face shape for a Haar box (:data:`MEAN_SHAPE`).
* The bundled eye cascade is then run on the upper part of the box. When it finds one eye
  near each expected eye position (within 0.15 box widths, 0.25 to 0.5 widths apart), the
  shape is rotated to their eye line (this captures head roll) and moved halfway towards
  their midpoint. The scale stays the box's: the eye boxes are too loose to set it.

The mean shape was measured by running YuNet and this cascade on the 400 FFHQ images in
``shared/data/ffhq-128`` (upscaled 2x) and averaging YuNet's landmarks in Haar-box units, made
left-right symmetric. The choices above were compared on those images and on 100 portraits
against YuNet's landmarks: the mean landmark error is about 10% of the eye distance (median),
against about 12% when the eye-cascade centres are used directly. Prefer YuNet when you can.

The score is the number of raw cascade windows merged into the box (more is surer), which
picked the right face more often than the cascade's stage weights.
"""

from __future__ import annotations

import cv2
import numpy as np

from deepfake_lab.errors import UserError
from deepfake_lab.faces.detectors.base import Face, FaceDetector
from deepfake_lab.faces.detectors.registry import FACE_DETECTORS

#: Landmarks as fractions of the Haar face box (x / w, y / h), in LANDMARK_NAMES order.
MEAN_SHAPE = np.array(
    [[0.32, 0.38], [0.68, 0.38], [0.50, 0.60], [0.345, 0.77], [0.655, 0.77]], dtype=np.float32
)

# The frontal-face cascade was trained on 24 px windows; nothing smaller can be found.
_MIN_BOX = 24


@FACE_DETECTORS.register("haar")
class HaarDetector(FaceDetector):
    """OpenCV's frontal-face Haar cascade plus estimated landmarks.

    Upright faces only: when the image as given has none, it is tried again rotated by
    -20 and +20 degrees (tilted heads), and the boxes found are mapped back.

    Args:
        min_neighbors: how many overlapping raw detections a face needs (higher: fewer false
            faces, more misses).
        scale_factor: step between the cascade's search scales.
        max_side: images are downscaled to at most this longer side for detection.
    """

    def __init__(self, min_neighbors: int = 5, scale_factor: float = 1.1, max_side: int = 1024):
        super().__init__(max_side=max_side)
        self.min_neighbors = int(min_neighbors)
        self.scale_factor = float(scale_factor)
        root = getattr(getattr(cv2, "data", None), "haarcascades", None)
        if root is not None:
            self._face = cv2.CascadeClassifier(root + "haarcascade_frontalface_default.xml")
            self._eye = cv2.CascadeClassifier(root + "haarcascade_eye.xml")
        if root is None or self._face.empty() or self._eye.empty():
            raise UserError(
                f"OpenCV's bundled Haar cascades are missing (looked in {root or 'cv2.data'}); "
                "install opencv-python-headless < 5, or use --detector yunet"
            )

    def _detect(self, image: np.ndarray) -> list[Face]:
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        height, width = gray.shape
        if max(height, width) < 200 and 2 * max(height, width) <= self.max_side:
            # The cascade misses faces under ~50 px; small images are searched at 2x.
            big = cv2.resize(gray, (2 * width, 2 * height), interpolation=cv2.INTER_CUBIC)
            return [f.scaled(0.5) for f in self._detect_gray(big)]
        return self._detect_gray(gray)

    def _detect_gray(self, gray: np.ndarray) -> list[Face]:
        faces = self._upright(gray)
        if faces:
            return faces
        height, width = gray.shape
        centre = (width / 2.0, height / 2.0)
        for angle in (-20.0, 20.0):
            rot = cv2.getRotationMatrix2D(centre, angle, 1.0)
            turned = cv2.warpAffine(gray, rot, (width, height), borderMode=cv2.BORDER_REFLECT)
            back = cv2.invertAffineTransform(rot)
            faces += [_transform(f, back) for f in self._upright(turned)]
        return faces

    def _upright(self, gray: np.ndarray) -> list[Face]:
        boxes, neighbours = self._face.detectMultiScale2(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(_MIN_BOX, _MIN_BOX),
        )
        faces = []
        for (x, y, w, h), count in zip(boxes, np.ravel(neighbours), strict=False):
            landmarks = self._landmarks(gray, int(x), int(y), int(w), int(h))
            box = (float(x), float(y), float(w), float(h))
            faces.append(Face(box, landmarks, float(count), landmarks_estimated=True))
        return faces

    def _landmarks(self, gray: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Five ``(x, y)`` points, float32 ``(5, 2)``, estimated as the module docstring says."""
        shape = MEAN_SHAPE * np.array([w, h], dtype=np.float32) + np.array([x, y], np.float32)
        eyes = self._eyes(gray, x, y, w, h)
        if eyes is None:
            return shape
        src, dst = shape[1] - shape[0], eyes[1] - eyes[0]
        angle = np.arctan2(dst[1], dst[0]) - np.arctan2(src[1], src[0])
        cos, sin = np.cos(angle), np.sin(angle)
        rot = np.array([[cos, -sin], [sin, cos]], dtype=np.float32)
        mid = shape[:2].mean(axis=0)
        target = 0.5 * (mid + eyes.mean(axis=0))
        return ((shape - mid) @ rot.T + target).astype(np.float32)

    def _eyes(self, gray: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray | None:
        """``(2, 2)`` float32 right and left eye centres from the eye cascade, or None."""
        left_edge, top = max(x, 0), max(y + int(0.15 * h), 0)
        roi = gray[top : y + int(0.6 * h), left_edge : x + w]
        if roi.size == 0:
            return None
        found = self._eye.detectMultiScale(
            roi, 1.1, 5, minSize=(max(5, w // 10),) * 2, maxSize=(w // 2,) * 2
        )
        expected = MEAN_SHAPE[:2] * np.array([w, h]) + np.array([x, y])
        centres = [
            np.array([left_edge + ex + ew / 2.0, top + ey + eh / 2.0]) for ex, ey, ew, eh in found
        ]
        picked = []
        for target in expected:  # the person's right eye first (image left)
            near = [c for c in centres if np.hypot(*(c - target)) < 0.15 * w]
            if not near:
                return None
            picked.append(min(near, key=lambda c: float(np.hypot(*(c - target)))))
        if not 0.25 * w <= np.hypot(*(picked[1] - picked[0])) <= 0.5 * w:
            return None
        return np.stack(picked).astype(np.float32)


def _transform(face: Face, affine: np.ndarray) -> Face:
    """``face`` mapped through a 2x3 affine; the box becomes the bounding box of its corners."""
    x, y, w, h = face.box
    corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]], dtype=np.float32)
    mapped = corners @ affine[:, :2].T + affine[:, 2]
    x0, y0 = mapped.min(axis=0)
    x1, y1 = mapped.max(axis=0)
    # Keep the box size of the upright detection (the rotated bounding box is larger), so
    # --min-face means the same thing for both paths.
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    box = (float(cx - w / 2.0), float(cy - h / 2.0), float(w), float(h))
    landmarks = (face.landmarks @ affine[:, :2].T + affine[:, 2]).astype(np.float32)
    return Face(box, landmarks, face.score, face.landmarks_estimated)
