"""Landmarks of aligned face crops, for masks (self-blended pseudo-fakes).

Three sources, best first; ``auto`` takes the first available:

- ``dlib68``: dlib's 68-point shape predictor (the ``lips`` extra, see
  :mod:`deepfake_lab.video.lips`), jaw line and brows included: a face outline;
- ``yunet``: YuNet's five points (eyes, nose tip, mouth corners), when its model file is
  found locally (never downloaded from here);
- ``template``: the five points of the alignment template (``faces.align.FFHQ_TEMPLATE``),
  right for crops made by ``data prepare`` or any FFHQ-aligned set, and the fallback for a
  crop where a detector finds no face.

A :class:`Landmarker` maps an (S, S, 3) uint8 RGB crop to ``(points, source)``: (K, 2)
float64 ``(x, y)`` pixels, K = 68 or 5, and which source gave them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepfake_lab.errors import UserError
from deepfake_lab.faces.align import FFHQ_TEMPLATE
from deepfake_lab.faces.detectors.base import Face

LANDMARK_SOURCES = ("auto", "dlib68", "yunet", "template")


def template_points(size: int) -> np.ndarray:
    """The alignment template's five points in an aligned ``size`` px crop, (5, 2) float64."""
    return FFHQ_TEMPLATE * float(size)


def box_from_five(points: np.ndarray) -> tuple[float, float, float, float]:
    """A dlib-detector-like face box ``(x, y, w, h)`` from five points: it spans the cheeks
    across and the brows to the chin down, as the boxes dlib's predictor was trained with."""
    eyes = (points[0] + points[1]) / 2
    mouth = (points[3] + points[4]) / 2
    iod = float(np.linalg.norm(points[1] - points[0]))
    down = float(np.linalg.norm(mouth - eyes))
    w = 2.3 * iod
    y0 = eyes[1] - 0.55 * down
    h = 2.2 * down
    return (float(eyes[0] - w / 2), float(y0), float(w), float(h))


class Landmarker:
    """Landmarks of aligned crops from the first source available (see module docstring).

    Args:
        source: ``auto``, ``dlib68``, ``yunet`` or ``template``.
        face_model: YuNet ONNX file (default: the cache; never downloaded here).

    Attributes:
        kind: the source chosen.
        fallbacks: crops where the detector found no face and the template was used.

    Raises:
        UserError: an unknown source, or one that was asked for and is not installed.
    """

    def __init__(self, source: str = "auto", face_model: str | Path | None = None) -> None:
        if source not in LANDMARK_SOURCES:
            raise UserError(
                f"unknown landmark source {source!r}; choose one of {', '.join(LANDMARK_SOURCES)}"
            )
        self.fallbacks = 0
        self._yunet = None
        self._dlib = None
        if source in ("auto", "dlib68"):
            from deepfake_lab.video.lips import LipTracker, lips_available

            if source == "dlib68" or lips_available():
                self._dlib = LipTracker()
        if source in ("auto", "yunet") or self._dlib is not None:
            self._yunet = self._load_yunet(face_model, required=source == "yunet")
        if self._dlib is not None:
            self.kind = "dlib68"
        elif self._yunet is not None:
            self.kind = "yunet"
        else:
            self.kind = "template"

    @staticmethod
    def _load_yunet(face_model: str | Path | None, required: bool) -> object | None:
        from deepfake_lab.faces.detectors.yunet import YuNetDetector, resolve_model

        try:
            path = resolve_model(face_model, download=False)
        except UserError:
            if required:
                raise
            return None
        # Aligned crops are small and tightly framed: search them as they are.
        return YuNetDetector(path, score_threshold=0.5)

    def five(self, crop: np.ndarray) -> tuple[np.ndarray, str]:
        """Five points of the most confident face (YuNet), else the template's."""
        if self._yunet is not None:
            faces: list[Face] = self._yunet.detect(crop)  # type: ignore[attr-defined]
            if faces:
                return faces[0].landmarks.astype(np.float64), "yunet"
        self.fallbacks += int(self._yunet is not None)
        return template_points(crop.shape[0]), "template"

    def __call__(self, crop: np.ndarray) -> tuple[np.ndarray, str]:
        """``(points, source)`` for one (S, S, 3) uint8 RGB crop."""
        five, where = self.five(crop)
        if self._dlib is None:
            return five, where
        face = Face(box_from_five(five), five.astype(np.float32), 1.0)
        return self._dlib.landmarks(crop, face), "dlib68"
