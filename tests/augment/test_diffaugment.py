"""DiffAugment: determinism, gradients, and what each transform does."""

from __future__ import annotations

import pytest
import torch

from deepfake_lab.augment.diffaugment import diff_augment, parse_policy, translate
from deepfake_lab.errors import UserError

POLICIES = ["color", "translation", "cutout", "color,translation,cutout"]


def images(b: int = 8, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("policy", POLICIES)
def test_seeded_shape_preserving_and_changing(policy: str) -> None:
    x = images()
    a = diff_augment(x, policy, gen(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, diff_augment(x, policy, gen(1)))
    assert not torch.equal(a, diff_augment(x, policy, gen(2)))
    assert not torch.equal(a, x)


def test_randomness_comes_only_from_the_generator():
    before = torch.get_rng_state()
    diff_augment(images(), "color,translation,cutout", gen(0))
    assert torch.equal(torch.get_rng_state(), before)
    # Without one, the global RNG is used.
    diff_augment(images(), "color", None)
    assert not torch.equal(torch.get_rng_state(), before)


def test_gradient_flows_to_the_input():
    x = images().requires_grad_(True)
    y = diff_augment(x, "color,translation,cutout", gen(0))
    (y * torch.randn_like(y)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("policy", ["", " ", ","])
def test_empty_policy_is_identity(policy: str) -> None:
    x = images()
    assert diff_augment(x, policy, gen(0)) is x


def test_unknown_policy():
    with pytest.raises(UserError, match="'rotate'.*color, translation, cutout"):
        diff_augment(images(), "color,rotate", gen(0))
    assert parse_policy(" color , cutout") == ("color", "cutout")


def test_translation_moves_content_by_at_most_an_eighth():
    b, size = 64, 16
    x = torch.zeros(b, 3, size, size)
    x[:, :, 8, 8] = 1.0  # one bright pixel in the middle
    y = diff_augment(x, "translation", gen(0))
    shifts = set()
    for i in range(b):
        where = (y[i, 0] == 1.0).nonzero()
        assert len(where) == 1 and y[i].sum() == 3.0  # moved, not blurred or duplicated
        dr, dc = (where[0] - 8).tolist()
        assert abs(dr) <= 2 and abs(dc) <= 2  # 16 / 8 = 2
        shifts.add((dr, dc))
    assert len(shifts) > 10  # many of the 25 possible shifts occur


def test_translate_matches_the_padded_grid_definition():
    x = images(b=4, size=8)
    sh, sw = torch.tensor([-3, 0, 2, 9]), torch.tensor([1, -8, 0, 2])
    out = translate(x, sh, sw)
    ref = torch.zeros_like(x)
    for b in range(4):
        for i in range(8):
            for j in range(8):
                si, sj = i + sh[b].item(), j + sw[b].item()
                if 0 <= si < 8 and 0 <= sj < 8:
                    ref[b, :, i, j] = x[b, :, si, sj]
    assert torch.equal(out, ref)


@pytest.mark.parametrize("size", [16, 15])
def test_cutout_zeroes_one_square_of_half_the_size(size: int) -> None:
    b = 64
    half = int(size * 0.5 + 0.5)
    y = diff_augment(torch.ones(b, 3, size, size), "cutout", gen(0))
    assert torch.equal(y[:, 0:1].expand_as(y), y)  # same mask on every channel
    full = 0
    for i in range(b):
        zero = y[i, 0] == 0
        rows = zero.any(1).nonzero().flatten()
        cols = zero.any(0).nonzero().flatten()
        assert len(rows) > 0
        # A rectangle: exactly the product of its row and column ranges, each contiguous.
        assert zero.sum() == len(rows) * len(cols)
        assert rows.tolist() == list(range(rows[0], rows[0] + len(rows)))
        assert cols.tolist() == list(range(cols[0], cols[0] + len(cols)))
        assert len(rows) <= half and len(cols) <= half
        # Only the border may clip it.
        assert len(rows) == half or rows[0] == 0 or rows[-1] == size - 1
        assert len(cols) == half or cols[0] == 0 or cols[-1] == size - 1
        full += len(rows) == half and len(cols) == half
    assert full > 10


def test_color_is_a_per_sample_affine_map_of_each_image():
    x = images(b=4)
    y = diff_augment(x, "color", gen(0))
    # Brightness, saturation and contrast are per-sample affine in x for fixed parameters, so
    # augmenting the same batch twice with the same seed is exactly linear in (x, 1).
    y2 = diff_augment(2 * x, "color", gen(0))
    y0 = diff_augment(torch.zeros_like(x), "color", gen(0))
    torch.testing.assert_close(y2 - y0, 2 * (y - y0))
