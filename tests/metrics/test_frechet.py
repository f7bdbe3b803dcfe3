import numpy as np
import pytest
import torch

from deepfake_lab.metrics.frechet import FeatureStatsAccumulator, feature_stats, frechet_distance


def test_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.1, 3, size=d), rng.uniform(0.1, 3, size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert isinstance(got, float)
    assert got == pytest.approx(expected, rel=1e-9)


def test_closed_form_for_commuting_full_covariances():
    # S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T commute: Tr sqrt(S1 S2) = sum sqrt(a b).
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    a, b = rng.uniform(0.5, 2, 8), rng.uniform(0.5, 2, 8)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    expected = np.sum(a + b - 2 * np.sqrt(a * b))
    assert frechet_distance(np.zeros(8), s1, np.zeros(8), s2) == pytest.approx(expected, rel=1e-7)


def test_set_against_itself_is_zero():
    feats = np.random.default_rng(2).normal(size=(500, 32)) * 3 + 7
    mu, sigma = feature_stats(feats)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_singular_covariances_fall_back_and_stay_finite():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(10, 64)), rng.normal(size=(12, 64)) + 1
    d = frechet_distance(*feature_stats(a), *feature_stats(b))
    assert np.isfinite(d) and d > 0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_feature_stats_matches_numpy():
    feats = np.random.default_rng(4).normal(size=(100, 5)).astype(np.float32)
    mu, sigma = feature_stats(feats)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64 and sigma.shape == (5, 5)
    np.testing.assert_allclose(mu, feats.astype(np.float64).mean(0))
    np.testing.assert_allclose(sigma, np.cov(feats.astype(np.float64), rowvar=False))
    with pytest.raises(ValueError):
        feature_stats(feats[:1])


@pytest.mark.parametrize("batch", [1, 7, 64, 1000])
def test_accumulator_equals_batch_computation(batch):
    # a large common offset is where naive sum-of-squares accumulation loses digits
    feats = np.random.default_rng(5).normal(size=(300, 12)) + 1e4
    acc = FeatureStatsAccumulator()
    for i in range(0, len(feats), batch):
        acc.update(torch.from_numpy(feats[i : i + batch]) if i % 2 else feats[i : i + batch])
    acc.update(np.zeros((0, 12)))
    mu, sigma = acc.stats()
    mu_ref, sigma_ref = feature_stats(feats)
    assert acc.count == 300
    np.testing.assert_allclose(mu, mu_ref, rtol=1e-12)
    np.testing.assert_allclose(sigma, sigma_ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(sigma, sigma.T)


def test_accumulator_rejects_bad_input():
    acc = FeatureStatsAccumulator(dim=4)
    with pytest.raises(ValueError):
        acc.update(np.zeros((3, 5)))
    acc.update(np.zeros((1, 4)))
    with pytest.raises(ValueError):
        acc.stats()
