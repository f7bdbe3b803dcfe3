"""Face detectors: registry, YuNet and Haar on real portraits, missing-model error."""

from __future__ import annotations

import io
import urllib.error
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from deepfake_lab.errors import UserError
from deepfake_lab.faces.detectors import FACE_DETECTORS, Face, FaceDetector
from deepfake_lab.faces.detectors import yunet as yunet_mod


def _portrait(name: str) -> np.ndarray:
    return np.asarray(Image.open(shared_path("data", "portraits-cc0-256", name)).convert("RGB"))


def _yunet_model() -> Path:
    """The shared YuNet model (skips the test when it is absent)."""
    return shared_path("models", "face_detection_yunet.onnx")


def _yunet():
    return FACE_DETECTORS.build("yunet", face_model=_yunet_model())


def test_registry_lists_both_detectors() -> None:
    assert {"haar", "yunet"} <= set(FACE_DETECTORS.names())
    with pytest.raises(UserError, match="choose one of: haar, yunet"):
        FACE_DETECTORS.get("dlib")


def test_yunet_finds_faces_with_landmarks() -> None:
    detector = _yunet()
    assert detector.registry_name == "yunet"
    for name in ("001.jpg", "002.jpg", "004.jpg", "006.jpg", "008.jpg"):
        faces = detector.detect(_portrait(name))
        assert faces, name
        face = faces[0]
        assert face.score >= 0.6 and not face.landmarks_estimated
        assert face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32
        x, y, w, h = face.box
        assert w > 32 and h > 32
        inside = (face.landmarks >= [x - 0.1 * w, y - 0.1 * h]) & (
            face.landmarks <= [x + 1.1 * w, y + 1.1 * h]
        )
        assert inside.all(), name
        # YuNet order: the person's right eye (image left) first, mouth below the eyes.
        right_eye, left_eye, _, mouth_r, mouth_l = face.landmarks
        if abs(right_eye[1] - left_eye[1]) < abs(right_eye[0] - left_eye[0]):  # upright-ish
            assert right_eye[0] < left_eye[0] and mouth_r[1] > right_eye[1], name
        assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)


def test_large_images_are_detected_downscaled_and_mapped_back() -> None:
    image = _portrait("001.jpg")
    detector = _yunet()
    reference = detector.detect(image)[0]
    big = cv2.resize(image, (1024, 1024), interpolation=cv2.INTER_CUBIC)  # 4x
    detector.max_side = 512  # forces the downscale path
    face = detector.detect(big)[0]
    iod = np.linalg.norm(reference.landmarks[1] - reference.landmarks[0])
    assert np.abs(face.landmarks / 4 - reference.landmarks).max() < 0.15 * iod
    assert face.box[2] == pytest.approx(4 * reference.box[2], rel=0.15)


def test_haar_works_on_portraits_with_estimated_landmarks() -> None:
    haar = FACE_DETECTORS.build("haar")
    yunet = _yunet()
    for name in ("001.jpg", "005.jpg", "006.jpg", "007.jpg"):
        image = _portrait(name)
        faces = haar.detect(image)
        assert faces, name
        face = faces[0]
        assert face.landmarks_estimated and face.landmarks.shape == (5, 2)
        # Estimated landmarks land near YuNet's: within 40% of the eye distance.
        ref = yunet.detect(image)[0].landmarks
        iod = np.linalg.norm(ref[1] - ref[0])
        assert np.linalg.norm(face.landmarks - ref, axis=1).mean() < 0.4 * iod, name


def test_haar_finds_nothing_in_a_blank_image() -> None:
    assert FACE_DETECTORS.build("haar").detect(np.full((200, 200, 3), 128, np.uint8)) == []


def test_sliver_images_give_no_faces_instead_of_garbage() -> None:
    # YuNet reports random boxes (infinite, empty or off the image) on a 1 px high image.
    detectors = [_yunet(), FACE_DETECTORS.build("haar")]
    for shape in ((1, 2000), (2, 3), (1, 1), (7, 900)):
        for detector in detectors:
            image = np.full((*shape, 3), 128, np.uint8)
            for _ in range(3):  # the garbage differs from call to call
                assert detector.detect(image) == [], (shape, detector.registry_name)


def test_detections_that_are_not_finite_or_off_the_image_are_dropped() -> None:
    def face(box, score=0.9, landmark=10.0) -> Face:
        return Face(box, np.full((5, 2), landmark, np.float32), score)

    good = face((10.0, 10.0, 20.0, 20.0), score=0.5)
    bad = [
        face((np.inf, 0.0, 10.0, 10.0)),
        face((10.0, 10.0, 20.0, 20.0), landmark=np.nan),
        face((10.0, 10.0, 20.0, 20.0), score=np.nan),
        face((10.0, 10.0, 0.0, 20.0)),
        face((1426.8, -112.9, 3.4, 17.0)),  # above the image, as YuNet gave on a sliver
        face((-30.0, 10.0, 20.0, 20.0)),
        face((100.0, 10.0, 20.0, 20.0)),
    ]

    class Fixed(FaceDetector):
        def _detect(self, image: np.ndarray) -> list[Face]:
            return [*bad, good]

    assert Fixed().detect(np.zeros((64, 100, 3), np.uint8)) == [good]


def test_missing_haar_cascades_are_a_user_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(cv2.data, "haarcascades", str(tmp_path) + "/")
    with pytest.raises(UserError, match="Haar cascades are missing.*--detector yunet"):
        FACE_DETECTORS.build("haar")


class _FakeResponse(io.BytesIO):
    """What ``urllib.request.urlopen`` returns, serving fixed bytes (a context manager)."""


def _serve(monkeypatch, body: bytes | Exception, fetched: list[str] | None = None) -> None:
    """Make the download in yunet.py see ``body`` (or raise it) instead of the network."""

    def urlopen(url, *args, **kwargs):
        if fetched is not None:
            fetched.append(url)
        if isinstance(body, Exception):
            raise body
        return _FakeResponse(body)

    monkeypatch.setattr("urllib.request.urlopen", urlopen)


def _cache(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("DEEPFAKE_LAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


def _files(folder: Path) -> list[str]:
    """Every file under ``folder``, hidden temp files included."""
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_missing_yunet_model_offline_is_one_clear_line(tmp_path: Path, monkeypatch) -> None:
    models = _cache(tmp_path, monkeypatch)
    _serve(monkeypatch, urllib.error.URLError("network is unreachable"))
    with pytest.raises(UserError) as info:
        FACE_DETECTORS.build("yunet")
    message = str(info.value)
    assert "\n" not in message
    assert str(models / "face_detection_yunet_2023mar.onnx") in message
    assert yunet_mod.MODEL_URL in message and "--face-model" in message
    assert "network is unreachable" in message
    assert _files(models) == []


def test_download_with_wrong_sha_is_refused_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    models = _cache(tmp_path, monkeypatch)
    fetched: list[str] = []
    _serve(monkeypatch, b"not the model" * 10_000, fetched)  # several chunks get written
    with pytest.raises(UserError) as info:
        yunet_mod.resolve_model()
    message = str(info.value)
    assert "\n" not in message and message.startswith("YuNet face model not found")
    assert f"expected {yunet_mod.MODEL_SHA256}" in message
    assert fetched == [yunet_mod.MODEL_URL]
    assert _files(models) == []  # neither the model nor its temp file


def test_download_cut_off_midway_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    models = _cache(tmp_path, monkeypatch)

    class CutOff(_FakeResponse):
        def read(self, size: int = -1) -> bytes:
            if self.tell() > 0:
                raise ConnectionResetError("connection reset by peer")
            return super().read(size)

    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: CutOff(b"x" * 200_000))
    with pytest.raises(UserError, match="connection reset by peer"):
        yunet_mod.resolve_model()
    assert _files(models) == []


def test_download_with_the_right_bytes_installs_the_model(tmp_path: Path, monkeypatch) -> None:
    model = _yunet_model()
    models = _cache(tmp_path, monkeypatch)
    fetched: list[str] = []
    _serve(monkeypatch, model.read_bytes(), fetched)
    path = yunet_mod.resolve_model()
    assert path == models / yunet_mod.MODEL_NAME
    assert path.read_bytes() == model.read_bytes()
    assert _files(models) == [yunet_mod.MODEL_NAME]  # no temp file left beside it
    assert yunet_mod.resolve_model() == path and len(fetched) == 1  # cached: no 2nd fetch
    assert FACE_DETECTORS.build("yunet").model_path == path


def test_bad_model_file_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(UserError, match="cannot load the YuNet model"):
        FACE_DETECTORS.build("yunet", face_model=bad)
    with pytest.raises(UserError, match="does not exist"):
        FACE_DETECTORS.build("yunet", face_model=tmp_path / "missing.onnx")
    with pytest.raises(UserError, match="is not a file"):
        FACE_DETECTORS.build("yunet", face_model=tmp_path)
