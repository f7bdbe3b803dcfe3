"""The resampling chain: one random size history and codec for every training image."""

import numpy as np
import pytest

from deepfake_lab.augment.resample import Compose, ResampleChain, to_native_floor
from deepfake_lab.errors import UserError


def _face(size=32, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(7 * xx), np.cos(5 * yy), np.sin(3 * (xx + yy))], -1) * 80 + 128
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def _high_freq(img):
    f = np.abs(np.fft.fft2(img.astype(np.float64).mean(-1)))
    n = img.shape[0]
    k = np.fft.fftfreq(n)
    kk = np.hypot(*np.meshgrid(k, k))
    return f[kk > 0.25].sum() / f[kk > 0].sum()


def test_same_generator_state_same_output_and_fixed_draws():
    chain = ResampleChain(p_resize=1.0, p_jpeg=1.0)
    img = _face()
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    out_a, out_b = chain(img, a), chain(img, b)
    assert np.array_equal(out_a, out_b) and out_a.shape == img.shape and out_a.dtype == np.uint8
    # Whatever fires, one call draws 7 numbers: the streams stay aligned.
    off = ResampleChain(p_resize=0.0, p_jpeg=0.0)
    c, d = np.random.default_rng(3), np.random.default_rng(3)
    assert np.array_equal(off(img, c), img)
    chain(img, d)
    assert c.random() == d.random()


def test_the_chain_changes_the_resolution_history_of_both_directions():
    img = _face(64)
    rng = np.random.default_rng(0)
    down = ResampleChain(p_resize=1.0, scale_low=0.4, scale_high=0.4, p_jpeg=0.0)
    outs = [down(img, rng) for _ in range(10)]
    assert all(not np.array_equal(o, img) for o in outs)
    # An upscaled look on average (a nearest-filter leg keeps blocky edges, hence the mean).
    assert np.mean([_high_freq(o) for o in outs]) < 0.8 * _high_freq(img)
    up = ResampleChain(p_resize=1.0, scale_low=2.0, scale_high=2.0, p_jpeg=0.0)
    changed = [not np.array_equal(up(img, rng), img) for _ in range(10)]
    assert any(changed)  # filters differ per leg: up-down is not always lossless


def test_floor_matches_an_image_that_was_native_at_the_floor():
    img = _face(64)
    floored = to_native_floor(img, 32)
    assert floored.shape == img.shape
    assert _high_freq(floored) < 0.5 * _high_freq(img)
    assert np.array_equal(to_native_floor(img, 64), img)
    # Flooring an image already upscaled from 32 px changes it little.
    assert np.abs(to_native_floor(floored, 32).astype(int) - floored).mean() < 2.0


def test_compose_runs_in_order_from_one_generator():
    seen = []
    ops = Compose((lambda im, r: seen.append("a") or im + 1, lambda im, r: seen.append("b") or im))
    out = ops(np.zeros((2, 2, 3), np.uint8), np.random.default_rng(0))
    assert seen == ["a", "b"] and out.max() == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"p_resize": 1.5},
        {"scale_low": 2.0, "scale_high": 1.0},
        {"jpeg_low": 0},
        {"p_h264": -0.1},
        {"crf_low": 40, "crf_high": 30},
        {"crf_high": 52},
    ],
)
def test_bad_settings_are_user_errors(kwargs):
    with pytest.raises(UserError, match="resample"):
        ResampleChain(**kwargs)


def test_move_takes_a_mask_where_the_same_draws_take_its_image():
    """``Compose.move`` from a copy of the generator state: the flips and warps of the image,
    nothing of its resampling, blur or colour, and the same count of draws."""
    from deepfake_lab.augment.geometry import RandomAffine
    from deepfake_lab.augment.robustness import RobustAugment

    ops = Compose((RandomAffine(p=1.0), ResampleChain(p_resize=1.0), RobustAugment(flip=1.0)))
    ramp = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (32, 1))  # left 0 -> right 1
    img = np.repeat((ramp * 255).astype(np.uint8)[..., None], 3, axis=2)
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    moved_img = ops(img, a)
    moved_mask = ops.move(ramp.copy(), b)
    assert a.bit_generator.state == b.bit_generator.state  # same draws
    # Flipped (the ramp now falls left to right) and warped like the image; no blur/JPEG.
    assert moved_mask[:, 2:8].mean() > moved_mask[:, -8:-2].mean()
    expect = RandomAffine(p=1.0).move(ramp, np.random.default_rng(3))[:, ::-1]
    np.testing.assert_allclose(moved_mask, expect, atol=1e-6)
    assert np.abs(moved_img[..., 0] / 255.0 - moved_mask).mean() < 0.08
    still = Compose((RobustAugment(flip=0.0),)).move(ramp, np.random.default_rng(0))
    assert np.array_equal(still, ramp)


def test_the_h264_leg_fires_at_its_rate_over_its_crf_range_without_extra_draws(monkeypatch):
    from deepfake_lab.augment import resample
    from deepfake_lab.augment.robustness import h264

    img = _face(32)
    only = ResampleChain(p_resize=0.0, p_jpeg=0.0, p_h264=1.0, crf_low=30, crf_high=30)
    assert np.array_equal(only(img, np.random.default_rng(0)), h264(img, 30))
    crfs = []
    monkeypatch.setattr(resample, "h264", lambda im, crf: crfs.append(crf) or im)
    chain = ResampleChain(p_resize=0.0, p_jpeg=0.0, p_h264=0.5, crf_low=18, crf_high=36)
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(400):
        chain(img, a)
    b.random(7 * 400)
    assert a.random() == b.random()  # 7 numbers a call, as before the leg existed
    assert 160 < len(crfs) < 240  # fires about half the time
    assert min(crfs) <= 19 and max(crfs) >= 35 and 24 < np.mean(crfs) < 30
    # Off (the default), the chain is the chain it was: the same outputs, stream for stream.
    old = ResampleChain(p_resize=1.0, p_jpeg=1.0)
    new = ResampleChain(p_resize=1.0, p_jpeg=1.0, p_h264=0.0, crf_low=0, crf_high=51)
    assert np.array_equal(old(img, np.random.default_rng(1)), new(img, np.random.default_rng(1)))


def test_the_detector_config_builds_the_chain_and_checks_its_ranges_when_read():
    from pydantic import ValidationError

    from deepfake_lab.training.detector import build_augment
    from deepfake_lab.training.detector_config import DetectorConfig

    cfg = DetectorConfig.model_validate({"resample": {"p_h264": 0.3, "h264_crf": [20, 28]}})
    chain = next(op for op in build_augment(cfg).ops if isinstance(op, ResampleChain))
    assert (chain.p_h264, chain.crf_low, chain.crf_high) == (0.3, 20, 28)
    assert DetectorConfig().resample.chain().p_h264 == 0.0
    with pytest.raises(ValidationError, match="crf_low"):
        DetectorConfig.model_validate({"resample": {"h264_crf": [40, 30]}})


def test_prepare_input_is_the_floor_then_the_reencoding():
    from deepfake_lab.augment.resample import prepare_input
    from deepfake_lab.augment.robustness import jpeg

    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(prepare_input(img, None, None), img)
    assert np.array_equal(prepare_input(img, None, "png"), img)
    assert np.array_equal(prepare_input(img, 16, None), to_native_floor(img, 16))
    assert np.array_equal(prepare_input(img, 16, "jpeg90"), jpeg(to_native_floor(img, 16), 90))
    assert np.array_equal(prepare_input(img, None, "jpeg90"), jpeg(img, 90))
