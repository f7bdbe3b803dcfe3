"""YuNet (OpenCV Zoo): a small CNN face detector with five landmarks, run by OpenCV's DNN.

The ONNX model (about 230 kB, MIT license) is looked for, in order, at ``--face-model PATH``,
then in the cache folder (``$DEEPFAKE_LAB_CACHE/models/`` or
``~/.cache/deepfake-lab/models/``, re-hashed on every use), and is otherwise downloaded from
the OpenCV Zoo into the cache and checked against its sha256 (:mod:`deepfake_lab.net`).
Offline (``--offline``) or unreachable and missing is one clear error line.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from deepfake_lab import net
from deepfake_lab.cache import cache_dir as shared_cache_dir
from deepfake_lab.errors import UserError
from deepfake_lab.faces.detectors.base import Face, FaceDetector
from deepfake_lab.faces.detectors.registry import FACE_DETECTORS

MODEL_NAME = "face_detection_yunet_2023mar.onnx"
MODEL_URL = (
    "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/" + MODEL_NAME
)
MODEL_SHA256 = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
_MAX_DOWNLOAD_BYTES = 16 << 20  # the model is 230 kB; anything far larger is not it
MODEL = net.ModelFile("YuNet face model", MODEL_NAME, MODEL_URL, MODEL_SHA256, _MAX_DOWNLOAD_BYTES)


def cache_dir() -> Path:
    """Folder for downloaded models (see :func:`deepfake_lab.cache.cache_dir`)."""
    return shared_cache_dir("models")


def resolve_model(face_model: Path | str | None = None, download: bool = True) -> Path:
    """The YuNet model file to use: ``face_model``, else the cached copy (sha256 checked),
    else a checked download into the cache (:func:`deepfake_lab.net.model_file`).

    Raises:
        UserError: ``face_model`` does not exist, the cached copy changed, or the model is
            missing and cannot be downloaded (the message says which file to place where).
    """
    if face_model is not None:
        path = Path(face_model).expanduser()
        if not path.exists():
            raise UserError(f"face model {path} does not exist (--face-model)")
        if not path.is_file():
            raise UserError(f"face model {path} is not a file (--face-model takes the .onnx file)")
        return path
    return net.model_file(
        MODEL,
        download=download,
        alternatives=", or pass --face-model PATH, or use --detector haar",
    )


@FACE_DETECTORS.register("yunet")
class YuNetDetector(FaceDetector):
    """YuNet via ``cv2.FaceDetectorYN``: boxes, five landmarks and scores.

    YuNet misses faces whose box is much larger or smaller than those it was trained on
    (about 10 to 300 px). When the image as given yields no face, two more views are tried:
    the image with a border of 25% each side (a face filling the frame becomes a smaller
    face with context), and, for small images, the image upscaled 2x (small faces, faces
    partly hidden by sunglasses). Results are mapped back to the original pixels.

    Args:
        face_model: the ONNX file; see :func:`resolve_model` for the search order.
        score_threshold: faces scoring below this are dropped.
        nms_threshold: IoU above which overlapping boxes are merged.
        max_side: images are downscaled to at most this longer side for detection.
    """

    def __init__(
        self,
        face_model: Path | str | None = None,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        max_side: int = 1024,
    ) -> None:
        super().__init__(max_side=max_side)
        self.model_path = resolve_model(face_model)
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(self.model_path), "", (320, 320), score_threshold, nms_threshold, 5000
            )
        except cv2.error as exc:
            raise UserError(
                f"cannot load the YuNet model {self.model_path} ({exc.msg.strip()}); "
                "delete it to download a fresh copy, or pass --face-model PATH"
            ) from None

    def _detect(self, image: np.ndarray) -> list[Face]:
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        faces = self._run(bgr)
        if faces:
            return faces
        height, width = bgr.shape[:2]
        pad = max(height, width) // 4
        padded = cv2.copyMakeBorder(bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        faces = [_shift(f, -pad) for f in self._run(padded)]
        if faces or 2 * max(height, width) > self.max_side:
            return faces
        upscaled = cv2.resize(bgr, (2 * width, 2 * height), interpolation=cv2.INTER_CUBIC)
        return [f.scaled(0.5) for f in self._run(upscaled)]

    def _run(self, bgr: np.ndarray) -> list[Face]:
        height, width = bgr.shape[:2]
        self._net.setInputSize((width, height))
        _, rows = self._net.detect(bgr)
        if rows is None:
            return []
        # Each row: x, y, w, h, then (x, y) of right eye, left eye, nose tip, right and left
        # mouth corner, then the score.
        return [
            Face(
                box=(float(r[0]), float(r[1]), float(r[2]), float(r[3])),
                landmarks=np.asarray(r[4:14], dtype=np.float32).reshape(5, 2),
                score=float(r[14]),
            )
            for r in rows
        ]


def _shift(face: Face, offset: float) -> Face:
    x, y, w, h = face.box
    return Face((x + offset, y + offset, w, h), face.landmarks + np.float32(offset), face.score)
