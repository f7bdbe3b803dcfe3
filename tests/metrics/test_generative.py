"""KID, IS, precision/recall, density/coverage: known answers, direct formulas, torch-fidelity."""

from __future__ import annotations

import importlib
import sys
import types

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from deepfake_lab.metrics.generative import (
    density_coverage,
    inception_score,
    kid,
    kth_nn_radii,
    precision_recall,
)


@pytest.fixture(scope="module")
def tfid():
    """torch-fidelity's metric modules, or skip. It is installed without its dependencies and
    imports torchvision at package import (for its datasets and other extractors, which these
    tests never touch), so a stub stands in for torchvision during the import only."""
    if importlib.util.find_spec("torch_fidelity") is None:
        pytest.skip("torch-fidelity is not installed (test-only reference implementation)")
    names = ["torchvision", "torchvision.datasets", "torchvision.models"]
    names += ["torchvision.transforms", "torchvision.transforms.functional"]
    saved = {n: sys.modules.get(n) for n in names}
    if importlib.util.find_spec("torchvision") is None:
        for n in names:
            sys.modules[n] = types.ModuleType(n)
        for cls in ("CIFAR10", "CIFAR100", "STL10"):
            setattr(sys.modules["torchvision.datasets"], cls, type(cls, (), {}))
        tv = sys.modules["torchvision"]
        tv.datasets, tv.models = (
            sys.modules["torchvision.datasets"],
            sys.modules["torchvision.models"],
        )
        tv.transforms = sys.modules["torchvision.transforms"]
        tv.transforms.functional = sys.modules["torchvision.transforms.functional"]
    try:
        return types.SimpleNamespace(
            kid=importlib.import_module("torch_fidelity.metric_kid"),
            isc=importlib.import_module("torch_fidelity.metric_isc"),
            prc=importlib.import_module("torch_fidelity.metric_prc"),
        )
    finally:
        for n, mod in saved.items():
            if mod is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = mod


def _gauss(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


# -- KID -----------------------------------------------------------------------------------------


def _mmd2_direct(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased estimator written out pair by pair (cubic kernel, gamma 1/d, coef0 1)."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1.0) ** 3

    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_kid_matches_the_direct_formula():
    x, y = _gauss(20, 5, 0), _gauss(20, 5, 1, shift=0.5)
    # One subset holding every row: a permutation of each set, to which MMD is invariant.
    mean, std = kid(x, y, subsets=1, subset_size=50)
    assert mean == pytest.approx(_mmd2_direct(x, y), rel=1e-12)
    assert std == 0.0


def test_kid_subsets_are_drawn_as_torch_fidelity_draws_them():
    x, y = _gauss(30, 4, 2), _gauss(25, 4, 3, shift=0.3)
    rng = np.random.RandomState(7)
    expected = []
    for _ in range(3):
        xs, ys = x[rng.choice(30, 10, replace=False)], y[rng.choice(25, 10, replace=False)]
        expected.append(_mmd2_direct(xs, ys))
    mean, std = kid(x, y, subsets=3, subset_size=10, seed=7)
    assert mean == pytest.approx(np.mean(expected), rel=1e-12)
    assert std == pytest.approx(np.std(expected), rel=1e-9)


def test_kid_of_a_set_against_itself_is_near_zero_and_a_shift_is_not():
    x = _gauss(400, 16, 4)
    same, _ = kid(x, x, subsets=3, subset_size=400)
    # Both "subsets" hold every row, so the cross term includes the n diagonal k(x, x) pairs
    # that the within-set terms leave out: the unbiased estimate is slightly negative, by
    # 2 (mean k(x, x) - mean k(x, y)) / n, and shrinks as 1 / n.
    k = (x @ x.T / 16 + 1) ** 3
    n = len(x)
    off_mean = (k.sum() - np.trace(k)) / (n * (n - 1))
    assert same == pytest.approx(-2 * (np.trace(k) / n - off_mean) / n, rel=1e-9)
    assert -0.05 < same < 0
    # Two independent samples of one distribution: zero within the spread over subsets.
    other_mean, other_std = kid(x, _gauss(400, 16, 5), subsets=20, subset_size=200)
    assert abs(other_mean) < 3 * other_std
    shifted, _ = kid(x, x + 0.5, subsets=20, subset_size=200)
    assert shifted > 20 * abs(same)


def test_kid_caps_the_subset_size_and_rejects_tiny_sets():
    x, y = _gauss(5, 3, 5), _gauss(8, 3, 6)
    assert kid(x, y, subsets=2, subset_size=1000) == kid(x, y, subsets=2, subset_size=5)
    with pytest.raises(ValueError, match="at least 2"):
        kid(x[:1], y)
    with pytest.raises(ValueError, match="widths differ"):
        kid(x, y[:, :2])


def test_kid_agrees_with_torch_fidelity(tfid):
    x, y = _gauss(150, 8, 7), _gauss(120, 8, 8, shift=0.2)
    ref = tfid.kid.kid_features_to_metric(
        torch.from_numpy(x),
        torch.from_numpy(y),
        kid_subsets=10,
        kid_subset_size=100,
        rng_seed=3,
        verbose=False,
    )
    mean, std = kid(x, y, subsets=10, subset_size=100, seed=3)
    assert mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-10)
    assert std == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-9)


# -- IS ------------------------------------------------------------------------------------------


def test_is_of_confident_uniform_predictions_is_the_class_count():
    classes, per_class = 7, 20
    logits = np.tile(np.eye(classes) * 1000.0, (per_class, 1))  # each split sees each class
    mean, std = inception_score(logits, splits=per_class)
    assert mean == pytest.approx(classes, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_is_of_identical_predictions_is_one():
    logits = np.tile(np.random.default_rng(0).normal(size=(1, 10)), (50, 1))
    mean, _ = inception_score(logits, splits=5)
    assert mean == pytest.approx(1.0, abs=1e-12)


def test_is_rejects_fewer_images_than_splits():
    with pytest.raises(ValueError, match="one image per split"):
        inception_score(np.zeros((5, 3)), splits=10)


@pytest.mark.parametrize("shuffle", [False, True])
def test_is_agrees_with_torch_fidelity(tfid, shuffle):
    logits = np.random.default_rng(1).normal(size=(103, 10)) * 3
    ref = tfid.isc.isc_features_to_metric(
        torch.from_numpy(logits), splits=4, shuffle=shuffle, rng_seed=2020
    )
    mean, std = inception_score(logits, splits=4, shuffle_seed=2020 if shuffle else None)
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-12)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-9)


# -- precision / recall --------------------------------------------------------------------------


def _pr_direct(real, fake, k):
    r_rad = np.sort(cdist(real, real), axis=1)[:, k]
    f_rad = np.sort(cdist(fake, fake), axis=1)[:, k]
    precision = (cdist(fake, real) <= r_rad[None, :]).any(axis=1).mean()
    recall = (cdist(real, fake) <= f_rad[None, :]).any(axis=1).mean()
    return precision, recall


def test_kth_nn_radii_excludes_the_point_itself():
    pts = np.array([[0.0], [1.0], [3.0], [6.0]])
    np.testing.assert_allclose(kth_nn_radii(pts, 1, block=3), [1, 1, 2, 3])
    np.testing.assert_allclose(kth_nn_radii(pts, 2), [3, 2, 3, 5])


def test_precision_recall_known_answers():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(60, 6))
    assert precision_recall(a, a.copy(), k=3) == (1.0, 1.0)
    assert precision_recall(a, a + 1000.0, k=3) == (0.0, 0.0)
    # Fakes are half of one of two far-apart real clusters: all realistic, half the reals
    # (the other cluster) missed.
    b = rng.normal(size=(60, 6)) + 1000.0
    precision, recall = precision_recall(np.concatenate([a, b]), a[:30], k=3)
    assert precision == 1.0
    assert 0.0 < recall < 0.5


def test_precision_recall_matches_the_full_matrix_formula_in_small_blocks():
    real, fake = _gauss(53, 5, 3), _gauss(41, 5, 4, shift=0.4)
    got = precision_recall(real, fake, k=3, block=7)
    assert got == pytest.approx(_pr_direct(real, fake, 3), abs=1e-12)


def test_precision_recall_agrees_with_torch_fidelity(tfid):
    real, fake = _gauss(90, 8, 5), _gauss(70, 8, 6, shift=0.3)
    ref = tfid.prc.calculate_precision_recall_full(
        torch.from_numpy(fake), torch.from_numpy(real), neighborhood=3, batch_size=32
    )
    # torch-fidelity averages in float32.
    assert precision_recall(real, fake, k=3, block=16) == pytest.approx(ref, abs=1e-6)


# -- density / coverage --------------------------------------------------------------------------


def _dc_direct(real, fake, k):
    """As the authors' ``prdc`` package computes them (strict inequalities)."""
    radii = np.sort(cdist(real, real), axis=1)[:, k]
    d = cdist(real, fake)
    density = (d < radii[:, None]).sum(axis=0).mean() / k
    coverage = (d.min(axis=1) < radii).mean()
    return density, coverage


def test_density_coverage_known_answers():
    a = _gauss(80, 6, 7)
    # A copy of the reals: each real ball holds its centre and k - 1 neighbours strictly
    # inside (the k-th sits on the boundary), so density is exactly 1.
    assert density_coverage(a, a.copy(), k=5) == pytest.approx((1.0, 1.0), abs=1e-12)
    assert density_coverage(a, a + 1000.0, k=5) == (0.0, 0.0)
    # All fakes piled on one real point: dense there, but covering few real balls.
    density, coverage = density_coverage(a, np.repeat(a[:1], 10, axis=0), k=5)
    assert coverage < 0.2 and density > 0


def test_density_coverage_match_the_full_matrix_formula_in_small_blocks():
    real, fake = _gauss(57, 5, 8), _gauss(44, 5, 9, shift=0.3)
    got = density_coverage(real, fake, k=5, block=6)
    assert got == pytest.approx(_dc_direct(real, fake, 5), abs=1e-12)


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="NaN"):
        precision_recall(np.full((5, 2), np.nan), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="more than k=3"):
        precision_recall(np.zeros((3, 2)), np.zeros((5, 2)))
