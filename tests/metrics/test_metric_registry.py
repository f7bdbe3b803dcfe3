"""metrics/registry.py: one table of generator metrics for `eval gan` and training."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_lab.errors import UserError
from deepfake_lab.metrics.frechet import frechet_distance
from deepfake_lab.metrics.registry import (
    GEN_METRICS,
    HIGHER_IS_BETTER,
    check_counts,
    compute_metrics,
    parse_metrics,
)
from deepfake_lab.metrics.stats_cache import FeatureSet


def _set(rng: np.random.Generator, n: int, shift: float) -> FeatureSet:
    f = (rng.normal(size=(n, 8)) + shift).astype(np.float32)
    logits = rng.normal(size=(n, 5)).astype(np.float32)
    return FeatureSet(f.mean(0).astype(np.float64), np.cov(f, rowvar=False), n, f, logits, [])


def test_every_metric_writes_exactly_its_keys() -> None:
    rng = np.random.default_rng(0)
    fake, real = _set(rng, 40, 0.5), _set(rng, 40, 0.0)
    for name, m in GEN_METRICS.items():
        out = compute_metrics([name], "FID", fake, real, seed=0)
        assert set(out) == set(m.keys), name
        assert all(np.isfinite(v) for v in out.values())
        assert m.higher_is_better <= set(m.keys)
    out = compute_metrics(["fid"], "FD-R56", fake, real, seed=0)
    assert out["fid"] == out["fd_r56"] == frechet_distance(fake.mu, fake.sigma, real.mu, real.sigma)
    assert HIGHER_IS_BETTER == {"precision", "recall", "density", "coverage", "is_mean"}


def test_minimum_counts_come_from_the_table() -> None:
    for name, m in GEN_METRICS.items():
        check_counts([name], m.min_fake, m.min_real, "there are")
        with pytest.raises(UserError, match=f"{name} needs at least {m.min_fake} generated"):
            check_counts([name], m.min_fake - 1, m.min_real, "there are")
    assert parse_metrics("FID, kid,fid") == ["fid", "kid"]
    with pytest.raises(UserError, match="choose from: fid, kid, is, pr, dc"):
        parse_metrics("fud")
