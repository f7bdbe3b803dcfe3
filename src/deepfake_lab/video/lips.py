"""A denser mouth: the outer-lip opening from dlib's 68-point face landmarks.

YuNet gives five landmarks, of which only the two mouth corners touch the mouth, so it
cannot see the lips part. dlib's 68-point shape predictor (iBUG 300-W markup) has twelve
outer and eight inner lip points; the outer-lip opening (the mean vertical distance of
points 50-52 to 58-56, in inter-ocular distances) follows the jaw and lips as speech opens
them. It is optional: the ``lips`` extra installs ``dlib-bin`` and
``face_recognition_models``, whose wheel carries the predictor file
(``shape_predictor_68_face_landmarks.dat``); only that file is used. Its training data
(iBUG 300-W) is licensed for non-commercial research only: check it fits your use, or
give your own predictor file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from deepfake_lab.errors import UserError
from deepfake_lab.faces.detectors import Face

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
_UPPER_OUTER, _LOWER_OUTER = [50, 51, 52], [58, 57, 56]
_LEFT_EYE, _RIGHT_EYE = slice(36, 42), slice(42, 48)


def find_predictor() -> Path | None:
    """The 68-point predictor shipped by ``face_recognition_models``, if installed."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "models" / PREDICTOR_FILE
        if path.is_file():
            return path
    return None


def lips_available() -> bool:
    """True when dlib imports and the predictor file is installed."""
    return importlib.util.find_spec("dlib") is not None and find_predictor() is not None


def lip_tracker(mode: str = "auto", model: str | Path | None = None) -> LipTracker | None:
    """The lip tracker a ``--lips`` choice asks for.

    Args:
        mode: "on" (required: a clear error without dlib or the model), "off" (None), or
            "auto" (one when the ``lips`` extra is installed or ``model`` is given).
        model: a dlib 68-point predictor file (default: the extra's).

    Raises:
        UserError: an unknown mode, or "on" without dlib or the model file.
    """
    if mode not in ("auto", "on", "off"):
        raise UserError(f"--lips must be auto, on or off, got {mode!r}")
    if mode == "on" or (mode == "auto" and (model is not None or lips_available())):
        return LipTracker(model)
    return None


class LipTracker:
    """Outer-lip opening of detected faces, from a dlib 68-point shape predictor.

    Args:
        predictor: the ``.dat`` file (default: :func:`find_predictor`).

    Raises:
        UserError: dlib is not installed, or the predictor file is missing or unreadable.
    """

    def __init__(self, predictor: str | Path | None = None) -> None:
        try:
            import dlib
        except ImportError:
            raise UserError(
                "the lip landmarks need dlib: pip install 'deepfake-lab[lips]'"
            ) from None
        path = Path(predictor) if predictor is not None else find_predictor()
        if path is None or not path.is_file():
            raise UserError(
                f"lip landmark model not found: {path or PREDICTOR_FILE}; install "
                "'deepfake-lab[lips]' or give --lip-model PATH to a dlib 68-point predictor"
            )
        try:
            self._predict = dlib.shape_predictor(str(path))
        except RuntimeError as exc:
            raise UserError(f"cannot read the lip landmark model {path}: {exc}") from None
        self._rect = dlib.rectangle
        self.path = path

    def landmarks(self, image: np.ndarray, face: Face) -> np.ndarray:
        """(68, 2) float landmarks of ``face`` in ``image`` (H, W, 3) uint8 RGB."""
        x, y, w, h = face.box
        box = self._rect(int(x), int(y), int(round(x + w)), int(round(y + h)))
        shape = self._predict(np.ascontiguousarray(image), box)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64)

    def opening(self, image: np.ndarray, face: Face) -> float:
        """Outer-lip opening of ``face``, in inter-ocular distances (about 0.3 closed)."""
        return float(lip_opening(self.landmarks(image, face)[None])[0])


def lip_opening(points: np.ndarray) -> np.ndarray:
    """(T,) outer-lip opening from (T, 68, 2) landmarks, in inter-ocular distances.

    The inter-ocular distance (between the eye centres) stays put while the mouth moves,
    so the opening is comparable across head sizes and distances to the camera.
    """
    pts = np.asarray(points, np.float64)
    gap = np.linalg.norm(
        pts[:, _LOWER_OUTER].mean(axis=1) - pts[:, _UPPER_OUTER].mean(axis=1), axis=1
    )
    iod = np.linalg.norm(pts[:, _LEFT_EYE].mean(axis=1) - pts[:, _RIGHT_EYE].mean(axis=1), axis=1)
    return gap / np.maximum(iod, 1e-6)
