"""Generator metrics during training: evaluate checkpoints, log them, keep ``best.pt``.

Each evaluation scores the checkpoint just written (its G_ema) with
:func:`deepfake_lab.evaluation.evaluate.evaluate_gan`, so a number in ``metrics.jsonl`` always
belongs to a checkpoint a user can load. The best one by ``metrics.best`` is copied to
``checkpoints/best.pt`` (atomically) and described in ``checkpoints/best.json``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from deepfake_lab.errors import UserError
from deepfake_lab.io import atomic_write, atomic_write_json
from deepfake_lab.metrics.registry import (
    GEN_METRICS,
    HIGHER_IS_BETTER,
    build_extractor,
    label_key,
    parse_metrics,
)
from deepfake_lab.runs.checkpoint import capture_rng, restore_rng
from deepfake_lab.training.gan_config import GanConfig
from deepfake_lab.training.logger import RunLogger

BEST_FILE = "best.pt"


class MetricTracker:
    """Runs the configured metrics on checkpoints and keeps the best one.

    Built before the run folder exists, so that a missing reference folder or weights file
    fails before anything is written.

    Args:
        cfg: the run's config (uses ``cfg.metrics``, and ``cfg.data.path`` as the default
            reference folder).
        device: where the feature extractor runs.
    """

    def __init__(self, cfg: GanConfig, device: Any) -> None:
        m = cfg.metrics
        self.cfg = cfg
        self.names = parse_metrics(m.metrics)
        self.ref = m.ref or cfg.data.path
        if not self.ref:
            raise UserError(
                "metrics.every_kimg is set but there is no reference folder: set "
                "metrics.ref (or train from a folder with --data)"
            )
        if not Path(self.ref).is_dir():
            raise UserError(f"metrics reference folder not found: {self.ref}")
        weights = Path(m.weights) if m.weights else None
        self.extractor = build_extractor(m.features, weights, device, m.trust_torchscript)
        self.best_key = m.best
        if self.best_key is not None:
            self.best_key = self._resolve_key(self.best_key)

    def _resolve_key(self, key: str) -> str:
        # "fid" in a non-Inception space is reported under its label too (e.g. fd_r56).
        # Spreads (kid_std, is_std) say how sure a number is, not how good the model is.
        spreads = {"kid_std", "is_std"}
        known = {k for m in GEN_METRICS.values() for k in m.keys if k not in spreads}
        known.add(label_key(self.extractor.label))
        if key not in known:
            raise UserError(
                f"metrics.best {key!r} is not a metric key; use one of {', '.join(sorted(known))}"
            )
        return "fid" if key == label_key(self.extractor.label) else key

    def evaluate(self, checkpoint: Path, nimg: int, logger: RunLogger) -> dict[str, Any]:
        """Score ``checkpoint``, log the numbers, and update ``best.pt`` when it improved."""
        from deepfake_lab.evaluation.evaluate import evaluate_gan

        m = self.cfg.metrics
        # Loading the generator initialises a model from the global RNG: restore it after,
        # so that runs with and without metrics (and resumed runs) train identically.
        rng = capture_rng()
        try:
            result = evaluate_gan(
                checkpoint,
                self.ref,
                self.names,
                features=self.extractor,
                num=m.num,
                seed=0,
                cache_dir=m.cache_dir,
            )
        finally:
            restore_rng(rng)
        label = result["label"]
        values = {
            k: result[k] for k in (k for m in GEN_METRICS.values() for k in m.keys) if k in result
        }
        # Distances outside the Inception space carry their space's name, never "FID".
        named = {(label if k == "fid" else k): v for k, v in values.items()}
        logger.scalars(
            nimg,
            {f"Metrics/{k}": v for k, v in named.items()},
            kind="eval",
            feature_space=result["feature_space"],
            label=label,
            num_fake=result["num_fake"],
            num_real=result["num_real"],
            checkpoint=checkpoint.name,
        )
        text = ", ".join(f"{k} {v:.4g}" for k, v in named.items())
        logger.info(
            f"kimg {nimg / 1000:.3f} [{result['feature_space']}, {result['num_fake']} "
            f"vs {result['num_real']} images]: {text}"
        )
        if self.best_key is not None and self.best_key in values:
            self._maybe_best(checkpoint, nimg, values[self.best_key], label, logger)
        return result

    def _maybe_best(
        self, checkpoint: Path, nimg: int, value: float, label: str, logger: RunLogger
    ) -> None:
        import json

        better = (lambda a, b: a > b) if self.best_key in HIGHER_IS_BETTER else (lambda a, b: a < b)
        best_path, best_json = checkpoint.parent / BEST_FILE, checkpoint.parent / "best.json"
        if best_json.exists():
            prev = json.loads(best_json.read_text(encoding="utf-8"))
            if prev.get("key") == self.best_key and not better(value, prev["value"]):
                return

        def copy(fh) -> None:
            with open(checkpoint, "rb") as src:
                shutil.copyfileobj(src, fh)

        atomic_write(best_path, copy)
        name = label if self.best_key == "fid" else self.best_key
        atomic_write_json(
            best_json,
            {
                "key": self.best_key,
                "name": name,
                "value": value,
                "kimg": nimg / 1000,
                "checkpoint": checkpoint.name,
            },
        )
        logger.info(f"new best {name} {value:.4g}: {best_path}")
