"""Detection resistance of a generator: how well can a fresh detector tell its samples from
real faces, and how many of its samples do existing detectors catch?

1. ``num`` images are sampled from the generator into the result folder.
2. Reals (at most ``max_real``, default ``num``, so the classes are balanced) and samples
   are split once with :func:`split_samples`; the test part is written to ``test.jsonl``
   and never enters training (the detector trains, validates and calibrates on
   ``train.jsonl`` only).
3. A fresh detector trains on the train part; its held-out ROC-AUC comes with a bootstrap
   95% interval. 0.5 means the detector cannot tell the samples from real faces; the
   reported ``resistance`` is ``2 (1 - max(AUC, 0.5))``: 1 = indistinguishable, 0 = every
   sample ranked above every real face. A held-out AUC below 0.5 is a detector that failed
   to generalise, not a generator more real than real, hence the clamp.
4. Each given detector scores all ``num`` samples (none of them saw these): its detection
   rate (recall at its calibrated threshold, with a Wilson 95% interval), and, so that a
   detector calling everything fake does not look good, its false-positive rate and
   ROC-AUC on the held-out reals (which that detector may have trained on; we cannot know).

Layout::

    runs/NNNNN-resistance/
        samples/            the generated PNGs and generate.json
        train.jsonl, test.jsonl
        00000-detector/     the fresh detector's run folder
        resistance.json
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from deepfake_lab import __version__
from deepfake_lab.config import build_config
from deepfake_lab.data.detection import FAKE, REAL, DetectionSample, split_samples
from deepfake_lab.devices import resolve_device
from deepfake_lab.errors import UserError
from deepfake_lab.evaluation.fresh_detector import (
    folder_samples,
    score_samples,
    train_and_score,
    write_manifest,
)
from deepfake_lab.io import atomic_write_json
from deepfake_lab.metrics.detection import bootstrap_intervals, detection_metrics
from deepfake_lab.models.detectors.loading import LoadedDetector, load_detector
from deepfake_lab.runs.run_dir import create_run_dir

SOURCE = "generated"


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (95% for the default ``z``).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 or n hits,
    which is where detection rates of strong detectors sit.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # At k = 0 or k = n one end is exactly 0 or 1; set it so rounding cannot leave 0.99999.
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def resistance_from_auc(auc: float | None) -> float | None:
    """``2 (1 - max(auc, 0.5))`` in [0, 1]: 1 = indistinguishable, 0 = perfectly detected."""
    return None if auc is None else 2.0 * (1.0 - max(float(auc), 0.5))


def _existing_detector(
    det: LoadedDetector,
    source: str | Path,
    fakes: Sequence[DetectionSample],
    test_reals: Sequence[DetectionSample],
    device: torch.device,
) -> dict[str, Any]:
    data, logits = score_samples(det, [*test_reals, *fakes], device)
    labels = data.labels.numpy()
    m = detection_metrics(labels, logits, det.logit_threshold)
    c = m["confusion"]
    n_fake, n_real = c["tp"] + c["fn"], c["tn"] + c["fp"]
    return {
        "detector": str(source),
        "model": det.identity,
        "calibrated": det.calibrated,
        "threshold": det.threshold,
        "detection_rate": m["recall"],
        "interval": list(wilson_interval(c["tp"], n_fake)),
        "n": n_fake,
        "false_positive_rate": c["fp"] / n_real if n_real else None,
        "n_real": n_real,
        "roc_auc": m["roc_auc"],
    }


def detection_resistance(
    generator_source: str | Path,
    real_dir: str | Path,
    num: int = 1000,
    model: str = "npr",
    size: int | None = None,
    epochs: int | None = None,
    seed: int = 0,
    out: str | Path = "runs",
    detectors: Sequence[str | Path] = (),
    *,
    name: str = "resistance",
    max_real: int | None = None,
    test: float = 0.3,
    overrides: list[str] | None = None,
    config: str | Path | None = None,
    truncation: float = 1.0,
    n_boot: int = 1000,
    device: str = "auto",
    json_path: str | Path | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Measure how detectable a generator's samples are.

    Args:
        generator_source: GAN run folder, checkpoint or export.
        real_dir: folder of real faces.
        num: samples to generate (image i from seed ``seed + i``), >= 4.
        model, size, epochs, overrides, config: the fresh detector, as
            :func:`train_detector`; ``size`` defaults to the samples' own size (reals are
            resized to it); training seeds come from the config's ``train.seed``.
        seed: seed of the samples and of the train/test split.
        out, name: the result folder is ``out/NNNNN-name``.
        detectors: existing detectors (run folders, checkpoints, exports) to measure.
        max_real: reals used at most (a seeded subset; default ``num``).
        test: held-out share of reals and of samples, in (0, 1).
        truncation: psi of the sampling, in [0, 1].
        n_boot: bootstrap resamples for the held-out intervals (0: none).
        json_path: also write the result here.

    Returns:
        ``roc_auc`` and ``roc_auc_interval`` (held-out, fresh detector), ``resistance`` and
        ``resistance_interval`` in [0, 1], ``indistinguishable`` (the AUC interval reaches
        0.5; None without intervals), ``held_out`` (all metrics at the calibrated threshold,
        ``intervals``), ``detectors`` (one row per given detector: ``detection_rate``,
        ``interval``, ``n``, ``false_positive_rate``, ``roc_auc``, ...), ``generator``,
        ``n_train`` / ``n_test`` ({"real", "generated"}), ``detector_run``,
        ``train_manifest``, ``test_manifest``, ``run_dir``.

    Raises:
        UserError: bad arguments, a missing folder or detector, a config that does not
            build, or too few images for both splits; all before anything is generated.
    """
    from PIL import Image

    from deepfake_lab.generate import generate_images
    from deepfake_lab.provenance.marking import DETECTOR_DATA
    from deepfake_lab.training.detector import build_model
    from deepfake_lab.training.detector_config import DetectorConfig

    if num < 4:
        raise UserError(f"--num must be at least 4 (train and test need samples), got {num}")
    if not 0.0 < test < 1.0:
        raise UserError(f"test share must be in (0, 1), got {test}")
    reals = folder_samples(real_dir, REAL, "real")
    limit = num if max_real is None else max_real
    if len(reals) > limit:
        keep = np.random.default_rng(seed).permutation(len(reals))[:limit]
        reals = [reals[i] for i in sorted(keep)]
    flags = [f"model.arch={model}"] + ([f"model.size={size}"] if size else [])
    build_model(build_config(DetectorConfig, config, flags + list(overrides or [])))
    dev = resolve_device(device)
    given = [(p, load_detector(p, dev)) for p in detectors]  # bad paths fail before sampling

    run_dir = create_run_dir(out, name)
    (run_dir / "checkpoints").rmdir()  # the detector run inside has its own
    # Unmarked: a detector trained on marked samples could learn our watermark instead of
    # the generator's own artefacts, and resistance would measure the mark.
    gen = generate_images(
        generator_source,
        num,
        run_dir / "samples",
        seed=seed,
        truncation=truncation,
        device=device,
        provenance=DETECTOR_DATA,
    )
    fakes = folder_samples(run_dir / "samples", FAKE, SOURCE)
    if size is None:
        with Image.open(fakes[0].path) as im:
            size = int(im.size[0])
    split = split_samples([*reals, *fakes], val=0.0, test=test, seed=seed)
    train_s, test_s = split["train"], split["test"]
    for label, what in ((REAL, "real"), (FAKE, SOURCE)):
        for part, rows in (("train", train_s), ("test", test_s)):
            if not any(s.label == label for s in rows):
                raise UserError(f"no {what} image left for the {part} part; add images")
    train_manifest = write_manifest(run_dir / "train.jsonl", train_s)
    test_manifest = write_manifest(run_dir / "test.jsonl", test_s)

    det, detector_run, data, logits = train_and_score(
        train_manifest,
        test_s,
        out=run_dir,
        name="detector",
        what="the detector's training",
        config=config,
        overrides=overrides,
        model=model,
        size=size,
        epochs=epochs,
        device=device,
        console=console,
        progress=progress,
    )
    labels = data.labels.numpy()
    probs = det.probabilities_from_logits(logits)
    held_out = detection_metrics(labels, logits, det.logit_threshold, probs=probs)
    lo = hi = None
    if n_boot:
        ivals = bootstrap_intervals(
            labels, logits, det.logit_threshold, n_boot=n_boot, seed=seed, probs=probs
        )
        held_out["intervals"] = {k: list(v) for k, v in ivals.items()}
        lo, hi = ivals["roc_auc"]
    auc = held_out["roc_auc"]
    test_reals = [s for s in test_s if s.label == REAL]
    n_train_real = sum(s.label == REAL for s in train_s)
    result: dict[str, Any] = {
        "generator": gen["model"],
        "num": num,
        "size": size,
        "roc_auc": auc,
        "roc_auc_interval": [lo, hi],
        "resistance": resistance_from_auc(auc),
        # A higher AUC means a lower resistance, so the interval's ends swap.
        "resistance_interval": [resistance_from_auc(hi), resistance_from_auc(lo)],
        "indistinguishable": None if lo is None else bool(lo <= 0.5),
        "held_out": held_out,
        "detectors": [_existing_detector(d, p, fakes, test_reals, dev) for p, d in given],
        "n_train": {"real": n_train_real, SOURCE: len(train_s) - n_train_real},
        "n_test": {"real": len(test_reals), SOURCE: len(test_s) - len(test_reals)},
        "detector_run": str(detector_run),
        "detector_model": model,
        "train_manifest": str(train_manifest),
        "test_manifest": str(test_manifest),
        "seed": seed,
        "run_dir": str(run_dir),
        "versions": {"deepfake-lab": __version__, "torch": torch.__version__},
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    atomic_write_json(run_dir / "resistance.json", result)
    if json_path:
        atomic_write_json(Path(json_path), result)
    return result
