"""The generator metrics, in one place: what each needs, its minimum counts, its settings,
the keys it reports, which way is better, and how it is computed.

``eval gan`` (:func:`deepfake_lab.evaluation.evaluate.evaluate_gan`) and the in-training
metrics (:class:`deepfake_lab.training.gan_metrics.MetricTracker`) both read this table.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deepfake_lab.errors import UserError
from deepfake_lab.metrics.features import FEATURE_EXTRACTORS, FeatureExtractor
from deepfake_lab.metrics.frechet import frechet_distance
from deepfake_lab.metrics.generative import density_coverage, inception_score, kid, precision_recall
from deepfake_lab.metrics.stats_cache import FeatureSet

#: Settings of the metrics (recorded in every result's ``settings``).
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000
PR_K, DC_K, IS_SPLITS = 3, 5, 10


@dataclass(frozen=True)
class GenMetric:
    """One generator metric.

    Attributes:
        name: what ``--metrics`` calls it.
        description: one line for help and docs.
        keys: the result keys it writes; ``higher_is_better`` those where larger wins (every
            other key is a distance or a spread).
        min_fake, min_real: the fewest generated and reference images it can work with.
        needs_features: keeps the (N, d) feature matrices (not only mean and covariance).
        needs_logits: needs a classifier extractor's logits.
        compute: ``(fake, real, seed) -> {key: value}``.
    """

    name: str
    description: str
    keys: tuple[str, ...]
    higher_is_better: frozenset[str]
    min_fake: int
    min_real: int
    needs_features: bool
    needs_logits: bool
    compute: Callable[[FeatureSet, FeatureSet, int], dict[str, float]]


def _fid(fake: FeatureSet, real: FeatureSet, seed: int) -> dict[str, float]:
    return {"fid": frechet_distance(fake.mu, fake.sigma, real.mu, real.sigma)}


def _kid(fake: FeatureSet, real: FeatureSet, seed: int) -> dict[str, float]:
    m, s = kid(fake.features, real.features, KID_SUBSETS, KID_SUBSET_SIZE, seed=seed)
    return {"kid_mean": m, "kid_std": s}


def _pr(fake: FeatureSet, real: FeatureSet, seed: int) -> dict[str, float]:
    p, r = precision_recall(real.features, fake.features, PR_K)
    return {"precision": p, "recall": r}


def _dc(fake: FeatureSet, real: FeatureSet, seed: int) -> dict[str, float]:
    d, c = density_coverage(real.features, fake.features, DC_K)
    return {"density": d, "coverage": c}


def _is(fake: FeatureSet, real: FeatureSet, seed: int) -> dict[str, float]:
    m, s = inception_score(fake.logits, IS_SPLITS)
    return {"is_mean": m, "is_std": s}


#: Every generator metric, in the order results list them.
GEN_METRICS: dict[str, GenMetric] = {
    m.name: m
    for m in (
        GenMetric(
            "fid",
            "Frechet distance (FID in the Inception space, else the space's label)",
            ("fid",),
            frozenset(),
            2,
            2,
            False,
            False,
            _fid,
        ),
        GenMetric(
            "kid",
            "kernel distance, mean and std over subsets",
            ("kid_mean", "kid_std"),
            frozenset(),
            2,
            2,
            True,
            False,
            _kid,
        ),
        GenMetric(
            "is",
            "Inception-style score (classifier extractors only)",
            ("is_mean", "is_std"),
            frozenset({"is_mean"}),
            IS_SPLITS,
            0,
            False,
            True,
            _is,
        ),
        GenMetric(
            "pr",
            "precision and recall",
            ("precision", "recall"),
            frozenset({"precision", "recall"}),
            PR_K + 1,
            PR_K + 1,
            True,
            False,
            _pr,
        ),
        GenMetric(
            "dc",
            "density and coverage",
            ("density", "coverage"),
            frozenset({"density", "coverage"}),
            1,
            DC_K + 1,
            True,
            False,
            _dc,
        ),
    )
}

#: Result keys where a larger value is better.
HIGHER_IS_BETTER = frozenset().union(*(m.higher_is_better for m in GEN_METRICS.values()))


def parse_metrics(metrics: str | Sequence[str]) -> list[str]:
    """``"fid,kid"`` or ``["fid", "kid"]`` -> unique lower-case names, in the given order.

    Raises:
        UserError: an unknown name, or none.
    """
    items = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    names = list(dict.fromkeys(m.strip().lower() for m in items if m.strip()))
    unknown = [m for m in names if m not in GEN_METRICS]
    if unknown or not names:
        what = f"unknown metric {', '.join(map(repr, unknown))}" if unknown else "no metric given"
        raise UserError(f"{what}; choose from: {', '.join(GEN_METRICS)} (comma-separated)")
    return names


def label_key(label: str) -> str:
    """A space's label as a JSON key: ``"FD-R56"`` -> ``"fd_r56"``."""
    return "".join(c if c.isalnum() else "_" for c in label.lower())


def check_counts(metrics: Sequence[str], n_fake: int, n_real: int, stage: str) -> None:
    """A UserError naming the first metric that lacks images, and how many it needs."""
    for name in metrics:
        m = GEN_METRICS[name]
        if n_fake < m.min_fake or n_real < m.min_real:
            real_part = f" and {m.min_real} reference images" if m.min_real else ""
            raise UserError(
                f"{name} needs at least {m.min_fake} generated{real_part}; {stage} "
                f"{n_fake} generated and {n_real} reference images"
            )


def compute_metrics(
    names: Sequence[str], label: str, fake: FeatureSet, real: FeatureSet, seed: int
) -> dict[str, float]:
    """Every metric of ``names`` on two feature sets; a Frechet distance outside the
    Inception space is also reported under its space's label (``fd_r56``)."""
    out: dict[str, float] = {}
    for name in names:
        out.update(GEN_METRICS[name].compute(fake, real, seed))
    if "fid" in out and label != "FID":
        out[label_key(label)] = out["fid"]
    return out


def build_extractor(
    features: str | FeatureExtractor,
    weights: str | Path | None,
    device: torch.device,
    trust_torchscript: bool = False,
) -> FeatureExtractor:
    """The feature space ``features`` (a registry name, or a module used as it is) on
    ``device`` in eval mode, with its weights file.

    Args:
        features: a registered name, or a built extractor (returned as it is).
        weights: the space's weights file, when it takes one.
        device: where to put a built extractor.
        trust_torchscript: run the code of a ``torchscript`` space's module file (passed
            as ``trust`` to spaces that take it; they refuse the file otherwise).

    Raises:
        UserError: the space needs a weights file and none was given, or a module file
            whose code would run without ``trust_torchscript``.
    """
    if isinstance(features, FeatureExtractor):
        return features  # the caller's module stays where it is
    cls = FEATURE_EXTRACTORS.get(features)
    params = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {}
    if weights is not None:
        kwargs["weights"] = Path(weights)
    else:
        param = params.get("weights")
        if param is not None and param.default is inspect.Parameter.empty:
            raise UserError(f"the {features} feature space needs its weights file: --weights PATH")
    if "trust" in params:
        kwargs["trust"] = trust_torchscript
    return FEATURE_EXTRACTORS.build(features, **kwargs).to(device).eval()
