"""Face detectors: registry, YuNet and Haar on real portraits, missing-model error."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from deepfake_lab.errors import UserError
from deepfake_lab.faces.detectors import FACE_DETECTORS
from deepfake_lab.faces.detectors import yunet as yunet_mod

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
PORTRAITS = SHARED / "data" / "portraits-cc0-256"
YUNET = SHARED / "models" / "face_detection_yunet.onnx"


def _portrait(name: str) -> np.ndarray:
    if not PORTRAITS.is_dir():
        pytest.skip(f"shared portraits not available at {PORTRAITS}")
    return np.asarray(Image.open(PORTRAITS / name).convert("RGB"))


def _yunet():
    if not YUNET.is_file():
        pytest.skip(f"YuNet model not available at {YUNET}")
    return FACE_DETECTORS.build("yunet", face_model=YUNET)


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


def test_missing_yunet_model_offline_is_one_clear_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEEPFAKE_LAB_CACHE", str(tmp_path / "cache"))

    def offline(url: str, dest: Path, sha256: str, timeout: float = 30.0) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(yunet_mod, "_download", offline)
    with pytest.raises(UserError) as info:
        FACE_DETECTORS.build("yunet")
    message = str(info.value)
    assert "\n" not in message
    expected = tmp_path / "cache" / "models" / "face_detection_yunet_2023mar.onnx"
    assert str(expected) in message
    assert yunet_mod.MODEL_URL in message and "--face-model" in message
    assert "network is unreachable" in message


def test_download_goes_to_the_cache_and_is_checked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEEPFAKE_LAB_CACHE", str(tmp_path / "cache"))
    fetched: list[Path] = []

    def fake_download(url: str, dest: Path, sha256: str, timeout: float = 30.0) -> None:
        assert url == yunet_mod.MODEL_URL and sha256 == yunet_mod.MODEL_SHA256
        fetched.append(dest)
        dest.parent.mkdir(parents=True)
        dest.write_bytes(b"model")

    monkeypatch.setattr(yunet_mod, "_download", fake_download)
    path = yunet_mod.resolve_model()
    assert path == tmp_path / "cache" / "models" / yunet_mod.MODEL_NAME and path.is_file()
    assert yunet_mod.resolve_model() == path and len(fetched) == 1  # cached: no 2nd fetch


def test_download_with_wrong_sha_is_refused(tmp_path: Path, monkeypatch) -> None:
    class FakeResponse:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self) -> bytes:
            return b"not the model"

    monkeypatch.setattr(yunet_mod.urllib.request, "urlopen", lambda *a, **k: FakeResponse())
    dest = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match="sha256"):
        yunet_mod._download("https://example.invalid/m.onnx", dest, yunet_mod.MODEL_SHA256)
    assert not dest.exists()


def test_bad_model_file_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(UserError, match="cannot load the YuNet model"):
        FACE_DETECTORS.build("yunet", face_model=bad)
    with pytest.raises(UserError, match="does not exist"):
        FACE_DETECTORS.build("yunet", face_model=tmp_path / "missing.onnx")
