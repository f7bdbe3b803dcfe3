"""Robustness augmentations: each op degrades in the expected direction; the pipeline is
deterministic for a generator state and draws a fixed amount per image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepfake_lab.augment.robustness import (
    PERTURBATIONS,
    OpRange,
    RobustAugment,
    check_h264,
    color_jitter,
    gaussian_blur,
    gaussian_noise,
    get_perturbation,
    h264,
    hflip,
    jpeg,
    map_images,
    resize,
)
from deepfake_lab.errors import UserError


def picture(size: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth gradient with fine stripes and a little texture: has low and high frequencies."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 80 + 90 * xx[..., None] * np.array([1.0, 0.6, 0.3]) + 40 * yy[..., None]
    stripes = 25 * np.sin(2 * np.pi * xx * size / 3)[..., None]
    img = base + stripes + rng.normal(0, 6, (size, size, 1))  # luma texture, as in faces
    return np.clip(img, 0, 255).astype(np.uint8)


def hf_energy(img: np.ndarray) -> float:
    """Mean squared difference of horizontal and vertical neighbours (high-frequency energy)."""
    x = img.astype(np.float64)
    return float((np.diff(x, axis=0) ** 2).mean() + (np.diff(x, axis=1) ** 2).mean())


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())


OPS = {
    "blur": lambda im: gaussian_blur(im, 1.5),
    "jpeg": lambda im: jpeg(im, 60),
    "resize": lambda im: resize(im, 0.5),
    "hflip": hflip,
    "color": lambda im: color_jitter(im, 0.3, 0.3, 0.3, np.random.default_rng(0)),
    "noise": lambda im: gaussian_noise(im, 5.0, np.random.default_rng(0)),
    **PERTURBATIONS,
}


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("shape", [(32, 32), (48, 40)])
def test_ops_keep_shape_dtype_and_input(name: str, shape: tuple[int, int]) -> None:
    img = picture(64)[: shape[0], : shape[1]].copy()
    before = img.copy()
    out = OPS[name](img)
    assert out.shape == img.shape and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(img, before)  # input untouched
    assert not np.shares_memory(out, img)


def test_blur_lowers_high_frequency_energy() -> None:
    img = picture()
    e0, e1, e2 = (hf_energy(gaussian_blur(img, s)) for s in (0.0, 1.0, 2.0))
    assert e2 < e1 < 0.5 * e0
    np.testing.assert_array_equal(gaussian_blur(img, 0), img)


def test_jpeg_error_grows_as_quality_drops() -> None:
    img = picture()
    q95, q50 = jpeg(img, 95), jpeg(img, 50)
    assert 0 < mse(q95, img) < mse(q50, q95)
    assert mse(jpeg(img, 30), img) > mse(q50, img)


def test_resize_loses_detail() -> None:
    img = picture()
    half, three_q = resize(img, 0.5), resize(img, 0.75)
    assert hf_energy(half) < hf_energy(three_q) < hf_energy(img)
    assert mse(half, img) > mse(three_q, img) > 0
    np.testing.assert_array_equal(resize(img, 1.0), img)


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
def test_noise_has_requested_std(sigma: float) -> None:
    flat = np.full((128, 128, 3), 128, dtype=np.uint8)  # mid-grey: no clipping
    out = gaussian_noise(flat, sigma, np.random.default_rng(1))
    diff = out.astype(np.float64) - 128
    assert abs(diff.mean()) < 0.1
    assert diff.std() == pytest.approx(sigma, rel=0.03)


def test_hflip_mirrors() -> None:
    img = picture()
    np.testing.assert_array_equal(hflip(img), img[:, ::-1])
    np.testing.assert_array_equal(hflip(hflip(img)), img)


def test_color_jitter() -> None:
    img = picture()
    same = color_jitter(img, 0.0, 0.0, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(same, img)
    means = [color_jitter(img, 0.5, 0, 0, np.random.default_rng(s)).mean() for s in range(8)]
    assert max(means) > img.mean() + 5 and min(means) < img.mean() - 5
    grey = color_jitter(img, 0, 0, 1.0, np.random.default_rng(3))  # saturation factor in [0, 2]
    assert np.abs(grey.std(axis=2).mean() - img.std(axis=2).mean()) > 1


def augment_all(aug: RobustAugment, seed: int, n: int = 24) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [aug(picture(32, seed=i), rng) for i in range(n)]


def test_robust_augment_deterministic_and_seed_dependent() -> None:
    aug = RobustAugment(strength=2.0)
    a, b, c = augment_all(aug, 5), augment_all(aug, 5), augment_all(aug, 6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert all(x.shape == (32, 32, 3) and x.dtype == np.uint8 for x in a)


def test_robust_augment_resumes_from_generator_state() -> None:
    aug, img = RobustAugment(strength=2.0), picture(32)
    rng = np.random.default_rng(0)
    for _ in range(5):
        aug(img, rng)
    state = rng.bit_generator.state  # what a checkpoint stores
    expected = [aug(img, rng) for _ in range(10)]
    resumed = np.random.default_rng(123)
    resumed.bit_generator.state = state
    got = [aug(img, resumed) for _ in range(10)]
    assert all(np.array_equal(x, y) for x, y in zip(expected, got, strict=True))


def test_draws_per_image_do_not_depend_on_what_fires() -> None:
    never = RobustAugment(flip=0.0, strength=0.0)
    ops = {k: {"p": 1.0} for k in ("blur", "jpeg", "resize", "noise")}
    always = RobustAugment.from_dict(ops | {"flip": 1, "color": {"p": 1}})
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    never(picture(32), r1)
    always(picture(32), r2)
    assert r1.bit_generator.state == r2.bit_generator.state


def test_strength_zero_leaves_only_flip() -> None:
    aug, img = RobustAugment(strength=0.0), picture(32)
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = aug(img, rng)
        assert np.array_equal(out, img) or np.array_equal(out, hflip(img))


def test_strength_scales_probabilities_and_ranges() -> None:
    eff = RobustAugment(strength=2.0).effective
    assert eff["blur"] == pytest.approx((0.2, 0.2, 6.0))
    assert eff["jpeg"] == pytest.approx((0.2, 10.0, 100.0))  # 100 - 2 * 70, clipped at q10
    assert eff["resize"] == pytest.approx((0.2, 1 / 16, 1.0))
    half = RobustAugment(strength=0.5).effective
    assert half["jpeg"] == pytest.approx((0.05, 65.0, 100.0))


def test_from_dict_round_trip_and_errors() -> None:
    aug = RobustAugment.from_dict({"blur": {"p": 0.3, "range": [0.5, 2]}, "flip": 0.0})
    assert aug.blur == OpRange(0.3, 0.5, 2.0) and aug.flip == 0.0
    assert RobustAugment.from_dict(aug.to_dict()) == aug
    for bad in (
        {"sharpen": {"p": 1}},
        {"blur": {"p": 1.5}},
        {"jpeg": {"range": [0, 100]}},
        {"resize": {"range": [0.9, 0.5]}},
        {"blur": {"sigma": 1}},
        {"color": {"hue": 0.1}},
        {"strength": -1},
    ):
        with pytest.raises(UserError):
            RobustAugment.from_dict(bad)


def test_batch_on_tensors() -> None:
    images = torch.from_numpy(np.stack([picture(32, i) for i in range(4)])).permute(0, 3, 1, 2)
    out = RobustAugment(strength=2.0).batch(images, np.random.default_rng(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    flipped = map_images(hflip, images)
    assert torch.equal(flipped, images.flip(-1))


def test_perturbations_are_deterministic() -> None:
    assert set(PERTURBATIONS) == {
        "jpeg95",
        "jpeg75",
        "jpeg50",
        "resize0.5",
        "resize0.75",
        "blur1",
        "noise5",
        "resize0.5+jpeg75",
        "h264crf23",
    }
    img, other = picture(32, 0), picture(32, 1)
    for name, fn in PERTURBATIONS.items():
        np.testing.assert_array_equal(fn(img), fn(img.copy()), err_msg=name)
    noise = PERTURBATIONS["noise5"]
    # Seeded per image: different images get different noise fields.
    assert not np.array_equal(
        noise(img).astype(int) - img.astype(int), noise(other).astype(int) - other.astype(int)
    )
    assert get_perturbation("jpeg75") is PERTURBATIONS["jpeg75"]
    # The re-shared photo is the resize round trip, then JPEG q75, in that order.
    reshared = PERTURBATIONS["resize0.5+jpeg75"](img)
    np.testing.assert_array_equal(reshared, jpeg(resize(img, 0.5), 75))
    assert not np.array_equal(reshared, resize(jpeg(img, 75), 0.5))
    with pytest.raises(UserError, match="jpeg95"):
        get_perturbation("jpeg10")


def test_h264_round_trip_keeps_shape_and_loses_more_at_a_higher_rate_factor() -> None:
    img = picture(33, 0)[:, :31]  # odd sides: padded for 4:2:0, cropped back
    out = h264(img, 23)
    assert out.shape == img.shape and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, h264(img.copy(), 23))  # the same bytes every time
    errors = [np.abs(h264(img, crf).astype(int) - img).mean() for crf in (10, 28, 45)]
    assert errors[0] < errors[1] < errors[2]
    # 4:2:0 chroma: a one-pixel red/green checkerboard of equal luma loses its colour.
    board = np.zeros((32, 32, 3), np.uint8)
    odd = (np.add.outer(np.arange(32), np.arange(32)) % 2).astype(bool)
    board[odd] = (150, 100, 100)
    board[~odd] = (70, 140, 100)
    flat = h264(board, 0).astype(int)
    assert np.abs(flat[odd] - flat[~odd]).mean() < 0.25 * np.abs(board[odd] - board[~odd]).mean()
    assert np.array_equal(PERTURBATIONS["h264crf23"](img), out)


def test_h264_without_libx264_is_one_user_error(monkeypatch) -> None:
    import av

    def missing(name, mode):
        raise av.codec.codec.UnknownCodecError(name)

    monkeypatch.setattr(av.codec, "Codec", missing)
    with pytest.raises(UserError, match="libx264"):
        check_h264()
