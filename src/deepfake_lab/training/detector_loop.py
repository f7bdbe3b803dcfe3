"""The detector's training loop: steps, epoch-end validation, the best checkpoint, early
stopping, signals and the time budget, then calibration of the best checkpoint.

The trainer (:class:`deepfake_lab.training.detector.DetectorTrainer`) owns the model and
one step; this loop decides when to validate, save and stop. Under torchrun every rank runs
it and rank 0 alone validates and writes.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from deepfake_lab.data.detection import DetectionDataset
from deepfake_lab.data.pseudo import PseudoFakeSet
from deepfake_lab.runs.checkpoint import checkpoint_name, prune_checkpoints, save_checkpoint
from deepfake_lab.training.common import stop_on_signals
from deepfake_lab.training.detector import DetectorTrainer, build_model, init_weights
from deepfake_lab.training.detector_config import DetectorConfig
from deepfake_lab.training.detector_report import SEAM_PREVIEW, save_seam_preview
from deepfake_lab.training.detector_validation import calibrate_best, improves, validate
from deepfake_lab.training.distributed import (
    SINGLE,
    DistContext,
    any_rank,
    broadcast,
    resume_trainer,
)
from deepfake_lab.training.logger import RunLogger, make_progress


@dataclass
class DetectorResult:
    """What a detector run left behind."""

    run_dir: Path
    best: Path | None
    status: str  # "done" | "early stop" | "interrupted" | "time limit"
    step: int
    val: dict[str, Any]
    signal: int | None = None
    main: bool = True  # False on the ranks > 0 of a data-parallel run, which write nothing


def run_detector_training(
    cfg: DetectorConfig,
    run_dir: Path,
    train: DetectionDataset | PseudoFakeSet,
    val: DetectionDataset,
    device: torch.device,
    logger: RunLogger,
    resume_state: dict[str, Any] | None = None,
    console: Console | None = None,
    progress: bool = True,
    native_floor: int | None = None,
    ctx: DistContext = SINGLE,
) -> DetectorResult:
    """Train until the epochs run out, validation stops improving, a signal or the budget;
    ``native_floor``: the side the data was floored to, recorded for scoring. Under torchrun
    every rank calls this (``ctx``); rank 0 alone validates and writes."""
    trainer = DetectorTrainer(cfg, train, val, device, native_floor, ctx)
    if resume_state is not None:
        resume_trainer(trainer, resume_state, logger, ctx, lambda: f"step {trainer.step}")
    elif cfg.model.init:
        logger.info(
            f"initialised from {cfg.model.init}: {init_weights(trainer.model, cfg.model.init)}"
        )
    ckpt_dir = run_dir / "checkpoints"
    t0, status, signum = time.perf_counter(), "done", None
    val_metrics: dict[str, Any] = {}
    budget = cfg.train.max_minutes * 60 if cfg.train.max_minutes else None
    spe = trainer.steps_per_epoch
    bar = make_progress(console, disable=not progress)
    with stop_on_signals() as stop, bar:
        task = bar.add_task(
            cfg.run.name, total=trainer.total_steps / 1000, completed=trainer.step / 1000, stats=""
        )
        sums: dict[str, float] = {}
        while trainer.step < trainer.total_steps:
            stats = trainer.train_step()
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.update(
                task,
                completed=trainer.step / 1000,
                stats=f"epoch {trainer.step / spe:.2f} loss {stats['Loss/train']:.3f}",
            )
            # Agreed by all ranks, so that they stop at the same step.
            signalled, timed_out = any_rank(
                [
                    stop["signal"] is not None,
                    budget is not None and time.perf_counter() - t0 >= budget,
                ],
                ctx,
            )
            if signalled:
                status, signum = "interrupted", stop["signal"] or signal.SIGTERM
            elif timed_out:
                status = "time limit"
            if trainer.step % spe == 0:  # end of an epoch: validate, keep the best
                n = spe
                trainer.refresh_batchnorm()  # on every rank: it may reduce over them
                val_metrics = broadcast(
                    validate(trainer.eval_model, val, device, cfg.model.tta)
                    if ctx.is_main
                    else None,
                    ctx,
                )
                auc = val_metrics["roc_auc"] if val_metrics["roc_auc"] is not None else 0.5
                logger.scalars(
                    trainer.step * cfg.train.batch,
                    {
                        **{k: v / n for k, v in sums.items()},
                        "Val/roc_auc": auc,
                        "Val/ap": val_metrics["ap"] or 0.0,
                        "Val/eer": val_metrics["eer"] or 0.0,
                        "Val/accuracy": val_metrics["accuracy"],
                        "Val/loss": val_metrics["loss"],
                    },
                    epoch=trainer.step // spe,
                    step=trainer.step,
                )
                sums = {}
                logger.info(
                    f"epoch {trainer.step // spe}: val ROC-AUC {auc:.4f}, "
                    f"EER {val_metrics['eer']}, acc {val_metrics['accuracy']:.4f}"
                )
                loss = val_metrics["loss"]
                if improves(auc, loss, trainer.best_auc, trainer.best_loss):
                    trainer.best_auc, trainer.best_loss, trainer.bad_epochs = auc, loss, 0
                    _save(trainer, ckpt_dir / "best.pt")
                else:
                    trainer.bad_epochs += 1
                    if trainer.bad_epochs >= cfg.train.patience:
                        status = "early stop"
            last = trainer.step >= trainer.total_steps or status != "done"
            if last or trainer.step % spe == 0:
                _save(trainer, ckpt_dir / checkpoint_name(trainer.step * cfg.train.batch))
                if ctx.is_main:
                    prune_checkpoints(ckpt_dir, cfg.train.keep_checkpoints)
            if last:
                break
    if trainer.seam is not None and ctx.is_main:
        assert isinstance(train, PseudoFakeSet)
        save_seam_preview(train, trainer.seam, trainer.model, run_dir / SEAM_PREVIEW)
    best = ckpt_dir / "best.pt"
    if best.exists() and ctx.is_main:
        calibrate_best(best, build_model(cfg), cfg, val, device, logger)
    logger.info(
        f"{status} at step {trainer.step} (epoch {trainer.step / spe:.2f}); "
        f"best val ROC-AUC {trainer.best_auc:.4f}"
    )
    return DetectorResult(
        run_dir, best if best.exists() else None, status, trainer.step, val_metrics, signum,
        ctx.is_main,
    )  # fmt: skip


def _save(trainer: DetectorTrainer, path: Path) -> None:
    state = trainer.state_dict()  # on every rank: it gathers the ranks' random states
    if trainer.ctx.is_main:
        save_checkpoint(path, state)
