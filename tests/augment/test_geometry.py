"""The affine jitter: a random rotation, zoom and shift of whole training images."""

import numpy as np
import pytest
from pydantic import ValidationError

from deepfake_lab.augment.geometry import RandomAffine, affine_matrix
from deepfake_lab.errors import UserError


def _img(size=32, seed=0):
    return (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)


def test_same_state_same_output_and_five_draws_whatever_fires():
    aug, img = RandomAffine(p=1.0), _img()
    a, b = aug(img, np.random.default_rng(4)), aug(img, np.random.default_rng(4))
    assert np.array_equal(a, b) and a.shape == img.shape and a.dtype == np.uint8
    assert not np.array_equal(a, img)
    off, c, d = RandomAffine(p=0.0), np.random.default_rng(4), np.random.default_rng(4)
    out = off(img, c)
    assert np.array_equal(out, img) and out is not img
    aug(img, d)
    assert c.random() == d.random()  # the stream stays aligned


def test_the_warp_moves_content_where_the_matrix_says():
    img = np.zeros((32, 32, 3), np.uint8)
    img[10, 12] = 255
    # A whole-pixel shift is exact under bilinear interpolation.
    m = affine_matrix(32, degrees=0.0, scale=1.0, tx=3.0, ty=-2.0)
    import cv2

    out = cv2.warpAffine(img, m, (32, 32), flags=cv2.INTER_LINEAR)
    assert out[8, 15, 0] == 255 and out.sum() == 255 * 3
    # A 90 degree turn about the centre sends the top edge to the left edge.
    m = affine_matrix(32, degrees=90.0, scale=1.0, tx=0.0, ty=0.0)
    x, y = m @ np.array([16.0, 0.0, 1.0])
    assert (round(x), round(y)) == (0, 16)


def test_p_is_the_share_of_images_warped_and_ranges_hold():
    aug, img = RandomAffine(p=0.3, degrees=0.0, scale=(1.0, 1.0), shift=0.1), _img()
    rng = np.random.default_rng(0)
    warped = [not np.array_equal(aug(img, rng), img) for _ in range(400)]
    assert 0.22 < np.mean(warped) < 0.38
    # Zoom only: a centred 1.5x zoom keeps the centre pixel and enlarges a centred square.
    big = np.zeros((64, 64, 3), np.uint8)
    big[28:36, 28:36] = 255
    zoom = RandomAffine(p=1.0, degrees=0.0, scale=(1.5, 1.5), shift=0.0)
    out = zoom(big, np.random.default_rng(1))
    assert (out[..., 0] > 127).sum() == pytest.approx(8 * 8 * 1.5**2, rel=0.15)


@pytest.mark.parametrize(
    "kwargs",
    [{"p": 1.5}, {"degrees": 90}, {"scale": (1.2, 1.1)}, {"scale": (0.2, 1)}, {"shift": 0.5}],
)
def test_out_of_range_settings_are_refused(kwargs):
    with pytest.raises(UserError, match="augment affine"):
        RandomAffine(**kwargs)


def test_the_detector_config_turns_it_on_first_and_leaves_it_out_when_off():
    from deepfake_lab.training.detector import build_augment
    from deepfake_lab.training.detector_config import DetectorConfig

    assert all(type(op).__name__ != "RandomAffine" for op in build_augment(DetectorConfig()).ops)
    cfg = DetectorConfig.model_validate({"augment": {"affine": {"p": 0.5, "degrees": 5}}})
    first = build_augment(cfg).ops[0]
    assert isinstance(first, RandomAffine) and (first.p, first.degrees) == (0.5, 5.0)
    with pytest.raises(ValidationError):
        DetectorConfig.model_validate({"augment": {"affine": {"p": 0.5, "angle": 5}}})
    # The op's own ranges, checked when the config is read (before any run starts).
    with pytest.raises(ValidationError, match="augment affine"):
        DetectorConfig.model_validate({"augment": {"affine": {"scale": [1.2, 1.1]}}})
