"""Frechet distance between Gaussians fitted to feature sets.

``d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` (Dowson and Landau 1982), the
formula behind FID. The name of the number depends on the feature space: "FID" only in the
Inception-v3 space, otherwise the extractor's ``label`` (e.g. FD-R56).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

__all__ = ["FeatureStatsAccumulator", "feature_stats", "frechet_distance"]


def _as_2d_float64(features: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    arr = np.asarray(features, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"expected features (N, d), got shape {arr.shape}")
    return arr


def feature_stats(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature set.

    Args:
        features: (N, d) with N >= 2.

    Returns:
        mu float64 (d,), sigma float64 (d, d): the unbiased (N - 1) covariance, as
        pytorch-fid and the StyleGAN metrics compute it.
    """
    arr = _as_2d_float64(features)
    if arr.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {arr.shape[0]}")
    return arr.mean(axis=0), np.cov(arr, rowvar=False).reshape(arr.shape[1], arr.shape[1])


class FeatureStatsAccumulator:
    """Streaming mean and covariance: feed batches, read ``stats()`` at any time.

    Sums are kept in float64 around a shift (the first batch's mean), which avoids the
    cancellation of the naive ``E[xx^T] - mu mu^T`` when features have a large mean, and
    gives the same numbers as ``feature_stats`` on the concatenated batches regardless of
    how they were split.

    Example:
        >>> acc = FeatureStatsAccumulator()
        >>> for batch in loader:
        ...     acc.update(extractor.features(batch))
        >>> mu, sigma = acc.stats()
    """

    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim
        self.count = 0
        self._shift: np.ndarray | None = None
        self._sum: np.ndarray | None = None
        self._outer: np.ndarray | None = None

    def update(self, batch: np.ndarray | torch.Tensor) -> None:
        """Add a batch of features (B, d); an empty batch is ignored."""
        arr = _as_2d_float64(batch)
        if self.dim is None:
            self.dim = arr.shape[1]
        if arr.shape[1] != self.dim:
            raise ValueError(f"feature width {arr.shape[1]} differs from earlier {self.dim}")
        if arr.shape[0] == 0:
            return
        if self._shift is None:
            self._shift = arr.mean(axis=0)
            self._sum = np.zeros(self.dim, dtype=np.float64)
            self._outer = np.zeros((self.dim, self.dim), dtype=np.float64)
        centered = arr - self._shift
        self._sum += centered.sum(axis=0)
        self._outer += centered.T @ centered
        self.count += arr.shape[0]

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu float64 (d,), sigma float64 (d, d)), as ``feature_stats`` would give."""
        if self.count < 2 or self._shift is None:
            raise ValueError(f"need at least 2 feature vectors for a covariance, got {self.count}")
        mean_c = self._sum / self.count
        sigma = (self._outer - self.count * np.outer(mean_c, mean_c)) / (self.count - 1)
        sigma = (sigma + sigma.T) / 2  # exact symmetry, as np.cov gives
        return self._shift + mean_c, sigma


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
    max_imag: float = 1e-3,
) -> float:
    """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Args:
        mu1, mu2: (d,) means.
        sigma1, sigma2: (d, d) covariances.
        eps: if ``sqrtm(sigma1 @ sigma2)`` is not finite (a singular product, e.g. fewer
            samples than dimensions), retry with ``eps`` added to both diagonals, as
            pytorch-fid does.
        max_imag: round-off can leave a tiny imaginary part in the matrix square root; it
            is dropped when every diagonal entry's is below this, otherwise we raise.

    Returns:
        The distance as a Python float (>= 0 up to round-off).

    Raises:
        ValueError: mismatched shapes, or a square root with a large imaginary part.
    """
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"shape mismatch: mu1 {mu1.shape}, sigma1 {sigma1.shape}, "
            f"mu2 {mu2.shape}, sigma2 {sigma2.shape}"
        )
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(d) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        worst = float(np.abs(np.diagonal(covmean).imag).max())
        if worst > max_imag:
            raise ValueError(
                f"matrix square root has an imaginary component of {worst:.3g}; "
                "the covariances may be degenerate (too few samples for the feature width?)"
            )
        covmean = covmean.real
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return float(value)
