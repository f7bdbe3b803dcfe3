"""Sample-based generator metrics on feature matrices: KID, IS, precision/recall, density/coverage.

Every function takes features (or logits) already extracted by a
:class:`~deepfake_lab.metrics.features.FeatureExtractor` and computes in float64 with NumPy.
The Frechet distance lives in :mod:`deepfake_lab.metrics.frechet`.

Conventions follow the reference implementations, so numbers agree with them given the same
features:

- KID: Binkowski et al. 2018 / torch-fidelity (unbiased MMD^2, cubic polynomial kernel, random
  subsets drawn with ``np.random.RandomState(seed).choice(..., replace=False)``);
- IS: Salimans et al. 2016 / torch-fidelity (contiguous splits);
- precision/recall: Kynkaanniemi et al. 2019 (k-NN balls, ``<=``), as torch-fidelity;
- density/coverage: Naeem et al. 2020, as the authors' ``prdc`` package (strict ``<``).

Pairwise distances are computed a block of rows at a time, so memory is O(block x N) rather
than O(N^2).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import log_softmax

__all__ = ["density_coverage", "inception_score", "kid", "kth_nn_radii", "precision_recall"]

#: Rows of the distance matrix computed at once: 4096 x 50k float64 is 1.6 GB at worst, and
#: small sets (the usual case) fit in one block.
DEFAULT_BLOCK = 4096


def _f64(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"expected {name} as a (N, d) matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return arr


def _pair(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, names: tuple[str, str]):
    x, y = _f64(a, names[0]), _f64(b, names[1])
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature widths differ: {names[0]} {x.shape}, {names[1]} {y.shape}")
    return x, y


def _sq_dists(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)) via the Gram expansion, clamped at 0."""
    d = (a * a).sum(axis=1)[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0, out=d)


def kid(
    feat_a: np.ndarray | torch.Tensor,
    feat_b: np.ndarray | torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel distance: unbiased MMD^2 with ``k(x, y) = (gamma x.y + coef0)^degree`` over subsets.

    For each of ``subsets`` rounds, ``m`` rows are drawn without replacement from each set and
    ``MMD^2 = sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1))
    - 2 sum_{i,j} k(x_i, y_j) / m^2``. Unbiased, so it can be slightly negative for equal
    distributions.

    Args:
        feat_a, feat_b: (Na, d) and (Nb, d) features; each set needs at least 2 rows.
        subsets: number of random subsets.
        subset_size: m, capped at ``min(Na, Nb)`` (torch-fidelity refuses instead).
        degree, gamma, coef0: the polynomial kernel; ``gamma=None`` means ``1 / d``.
        seed: seed of the ``np.random.RandomState`` that draws the subsets (torch-fidelity's
            ``rng_seed``), in the same order: a-indices then b-indices per subset.

    Returns:
        (mean, std) over subsets; std is the population std (``np.std``), as torch-fidelity.
    """
    x, y = _pair(feat_a, feat_b, ("feat_a", "feat_b"))
    n_a, n_b = len(x), len(y)
    if min(n_a, n_b) < 2:
        raise ValueError(f"KID needs at least 2 feature vectors per set, got {n_a} and {n_b}")
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"need subsets >= 1 and subset_size >= 2, got {subsets}, {subset_size}")
    m = min(subset_size, n_a, n_b)
    g = 1.0 / x.shape[1] if gamma is None else float(gamma)
    rng = np.random.RandomState(seed)
    mmds = np.empty(subsets, dtype=np.float64)
    for i in range(subsets):
        xs = x[rng.choice(n_a, m, replace=False)]
        ys = y[rng.choice(n_b, m, replace=False)]
        k_xx = (xs @ xs.T * g + coef0) ** degree
        k_yy = (ys @ ys.T * g + coef0) ** degree
        k_xy = (xs @ ys.T * g + coef0) ** degree
        off_diag = k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)
        mmds[i] = off_diag / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m)
    return float(mmds.mean()), float(mmds.std())


def inception_score(
    logits: np.ndarray | torch.Tensor, splits: int = 10, shuffle_seed: int | None = None
) -> tuple[float, float]:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))`` from class logits, over splits.

    Args:
        logits: (N, C) class logits (pre-softmax) of N >= ``splits`` images.
        splits: the images are cut into this many contiguous chunks (``N * i // splits``
            boundaries); each gets its own marginal ``p(y)``.
        shuffle_seed: when set, rows are first permuted with
            ``np.random.RandomState(shuffle_seed).permutation(N)``, as torch-fidelity does by
            default (its seed is 2020). ``None`` keeps the given order.

    Returns:
        (mean, std) of the per-split scores, in [1, C]; std is the population std.
    """
    z = _f64(logits, "logits")
    n = len(z)
    if splits < 1 or n < splits:
        raise ValueError(f"IS needs at least one image per split: {n} images, {splits} splits")
    if shuffle_seed is not None:
        z = z[np.random.RandomState(shuffle_seed).permutation(n)]
    log_p = log_softmax(z, axis=1)
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        p_c, log_p_c = p[lo:hi], log_p[lo:hi]
        q = p_c.mean(axis=0, keepdims=True)
        # A class no image in the split gives any probability has q == 0; its terms are
        # 0 * log(0 / 0), which are 0 by the limit, not NaN.
        log_q = np.log(q, out=np.zeros_like(q), where=q > 0)
        terms = np.where(p_c > 0, p_c * (log_p_c - log_q), 0.0)
        scores.append(np.exp(terms.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def _kth_nn_sq(feats: np.ndarray, k: int, block: int) -> np.ndarray:
    """Squared distance from each row to its k-th nearest other row: float64 (N,)."""
    n = len(feats)
    if k < 1 or n <= k:
        raise ValueError(f"k-NN radii need more than k={k} feature vectors, got {n}")
    sq = (feats * feats).sum(axis=1)
    radii_sq = np.empty(n, dtype=np.float64)
    for lo in range(0, n, block):
        d = _sq_dists(feats[lo : lo + block], feats, sq)
        # Index k in sorted order: index 0 is the row itself (distance 0).
        radii_sq[lo : lo + block] = np.partition(d, k, axis=1)[:, k]
    return radii_sq


def kth_nn_radii(
    feats: np.ndarray | torch.Tensor, k: int, block: int = DEFAULT_BLOCK
) -> np.ndarray:
    """Distance from each row to its k-th nearest other row (itself excluded).

    Args:
        feats: (N, d) with N > k.
        k: neighbourhood size, >= 1.
        block: rows of the distance matrix held at once.

    Returns:
        float64 (N,) radii (Euclidean, not squared).
    """
    return np.sqrt(_kth_nn_sq(_f64(feats, "features"), k, block))


def _share_inside(
    queries: np.ndarray, centres: np.ndarray, radii_sq: np.ndarray, block: int
) -> float:
    """Share of query rows within ``sqrt(radii_sq[j])`` (inclusive) of some centre row j."""
    c_sq = (centres * centres).sum(axis=1)
    inside = 0
    for lo in range(0, len(queries), block):
        d = _sq_dists(queries[lo : lo + block], centres, c_sq)
        inside += int((d <= radii_sq[None, :]).any(axis=1).sum())
    return inside / len(queries)


def precision_recall(
    real: np.ndarray | torch.Tensor,
    fake: np.ndarray | torch.Tensor,
    k: int = 3,
    block: int = DEFAULT_BLOCK,
) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Each set's manifold is the union of balls around its points, of radius the distance to
    the point's k-th nearest neighbour in the same set.

    Args:
        real: (Nr, d) reference features, Nr > k.
        fake: (Nf, d) generated features, Nf > k.
        k: neighbourhood size (3 in the paper and torch-fidelity).
        block: rows of each distance matrix held at once (memory O(block x N)).

    Returns:
        (precision, recall) in [0, 1]: the share of fakes inside the real manifold, and the
        share of reals inside the fake manifold.
    """
    r, f = _pair(real, fake, ("real features", "fake features"))
    # Squared distances throughout: a point on a ball's boundary (its k-th neighbour) is
    # compared with the very number its radius came from, so ties resolve exactly.
    precision = _share_inside(f, r, _kth_nn_sq(r, k, block), block)
    recall = _share_inside(r, f, _kth_nn_sq(f, k, block), block)
    return precision, recall


def density_coverage(
    real: np.ndarray | torch.Tensor,
    fake: np.ndarray | torch.Tensor,
    k: int = 5,
    block: int = DEFAULT_BLOCK,
) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020), on k-NN balls around the real points only.

    Args:
        real: (Nr, d) reference features, Nr > k.
        fake: (Nf, d) generated features, Nf >= 1.
        k: neighbourhood size (5 in the paper).
        block: real rows of the distance matrix held at once.

    Returns:
        (density, coverage). Density is the mean number of real balls holding a fake, over
        k: about 1 when the distributions match, unbounded above. Coverage is the share of
        real balls holding at least one fake, in [0, 1].
    """
    r, f = _pair(real, fake, ("real features", "fake features"))
    if len(f) < 1:
        raise ValueError("density/coverage need at least one fake feature vector")
    radii_sq = _kth_nn_sq(r, k, block)  # squared, so boundary ties resolve exactly
    f_sq = (f * f).sum(axis=1)
    held, covered = 0, 0
    for lo in range(0, len(r), block):
        d = _sq_dists(r[lo : lo + block], f, f_sq)
        r_sq = radii_sq[lo : lo + block, None]
        held += int((d < r_sq).sum())
        covered += int((d.min(axis=1, keepdims=True) < r_sq).sum())
    return held / (k * len(f)), covered / len(r)
