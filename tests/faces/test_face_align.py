"""Alignment transform, warp quality, centre crop, montage; and real portraits when present."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from deepfake_lab.faces.align import (
    FFHQ_TEMPLATE,
    align_face,
    alignment_transform,
    center_crop,
    map_points,
)
from deepfake_lab.faces.montage import make_montage


def _similarity(points: np.ndarray, angle_deg: float, scale: float, shift) -> np.ndarray:
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return scale * points @ rot.T + np.asarray(shift)


def test_transform_undoes_a_similarity_exactly() -> None:
    # A face with the template's shape, turned 35 degrees, 3x larger, moved.
    source = _similarity(FFHQ_TEMPLATE * 128, 35.0, 3.0, (400.0, 90.0))
    transform = alignment_transform(source, 128)
    assert np.allclose(map_points(transform, source), FFHQ_TEMPLATE * 128, atol=1e-6)
    assert math.hypot(transform[0, 0], transform[1, 0]) == pytest.approx(1 / 3)


def test_eyes_come_out_level_even_when_the_shape_differs() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        shape = FFHQ_TEMPLATE * 100 + rng.normal(0, 4, (5, 2))  # open mouth, turned head
        source = _similarity(shape, rng.uniform(-80, 80), rng.uniform(0.5, 4), (300, 200))
        eyes = map_points(alignment_transform(source, 256), source[:2])
        assert abs(eyes[0, 1] - eyes[1, 1]) < 1e-6
        assert eyes[0, 0] < eyes[1, 0]  # the person's right eye stays on the image left


def test_degenerate_landmarks_raise() -> None:
    with pytest.raises(ValueError, match="degenerate"):
        alignment_transform(np.zeros((5, 2)), 64)


def test_downscaling_warp_averages_instead_of_aliasing() -> None:
    # A 1 px checkerboard shrunk 8x: area averaging gives flat grey; point sampling would
    # give black/white moire.
    board = (np.indices((1024, 1024)).sum(axis=0) % 2 * 255).astype(np.uint8)
    image = np.repeat(board[:, :, None], 3, axis=2)
    landmarks = _similarity(FFHQ_TEMPLATE * 64, 10.0, 8.0, (256.0, 256.0))
    aligned, transform = align_face(image, landmarks, 64)
    assert aligned.shape == (64, 64, 3) and aligned.dtype == np.uint8
    assert abs(float(aligned.mean()) - 127.5) < 3 and float(aligned.std()) < 6


def test_center_crop_and_its_transform() -> None:
    image = np.zeros((60, 100, 3), np.uint8)
    image[:, 20:80] = 200  # the centred 60x60 square
    crop, transform = center_crop(image, 30)
    assert crop.shape == (30, 30, 3) and np.all(crop == 200)
    assert np.allclose(map_points(transform, [[20, 0], [80, 60]]), [[0, 0], [30, 30]])


def test_montage_resizes_every_crop_to_the_cell_and_tiles_row_by_row() -> None:
    tiles = [np.full((16, 16, 3), i * 20, np.uint8) for i in range(4)]
    tiles.append(np.full((40, 24, 3), 200, np.uint8))  # shrunk to the cell
    tiles.append(np.full((8, 8, 3), 90, np.uint8))  # enlarged to the cell
    sheet = make_montage(tiles, cell=16, gap=2)
    assert sheet.shape == (2 * 18 + 2, 3 * 18 + 2, 3) and sheet.dtype == np.uint8  # 3 x 2
    row1 = slice(2 + 18, 2 + 18 + 16)
    assert np.all(sheet[row1, 2 : 2 + 16] == 60)  # 4th tile: row 1, col 0
    assert np.all(sheet[row1, 20 : 20 + 16] == 200)  # 5th: row 1, col 1
    assert np.all(sheet[row1, 38 : 38 + 16] == 90)  # 6th: row 1, col 2
    assert np.all(sheet[:2] == 0) and np.all(sheet[:, 18:20] == 0)  # border and gaps
    assert make_montage(tiles[:2], cell=8, columns=1, gap=0).shape == (16, 8, 3)
    with pytest.raises(ValueError, match="no images"):
        make_montage([])


def test_real_portraits_align_eyes_level_at_the_template() -> None:
    portraits = shared_path("data", "portraits-cc0-256")
    model = shared_path("models", "face_detection_yunet.onnx")
    from deepfake_lab.faces.detectors import FACE_DETECTORS

    detector = FACE_DETECTORS.build("yunet", face_model=model)
    size = 128
    target = FFHQ_TEMPLATE[:2] * size
    for name in ("001.jpg", "003.jpg", "005.jpg", "007.jpg", "009.jpg"):
        image = np.asarray(Image.open(portraits / name).convert("RGB"))
        faces = detector.detect(image)
        assert faces, name
        aligned, transform = align_face(image, faces[0].landmarks, size)
        eyes = map_points(transform, faces[0].landmarks[:2])
        assert abs(eyes[0, 1] - eyes[1, 1]) < 1.0, name
        # At the template: the eye midpoint within 3% of the side, eye distance within 15%.
        assert np.allclose(eyes.mean(axis=0), target.mean(axis=0), atol=0.03 * size), name
        ratio = np.linalg.norm(eyes[1] - eyes[0]) / np.linalg.norm(target[1] - target[0])
        assert 0.85 < ratio < 1.15, name
        assert aligned.shape == (size, size, 3)
