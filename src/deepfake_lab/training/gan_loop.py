"""Running a GAN training: the outer loop with logging, samples, checkpoints and signals.

:class:`~deepfake_lab.training.gan.GanTrainer` owns the models and one step; this module
decides when to log, draw sample grids and checkpoint, and stops cleanly on SIGINT/SIGTERM,
a time budget, or the end of the schedule.
"""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from deepfake_lab.config import save_config
from deepfake_lab.data.dataset import FaceDataset
from deepfake_lab.devices import resolve_device
from deepfake_lab.hashing import weights_sha256
from deepfake_lab.provenance.marking import Marker
from deepfake_lab.report.grid import make_grid, save_grid
from deepfake_lab.runs.checkpoint import checkpoint_name, prune_checkpoints, save_checkpoint
from deepfake_lab.training.common import (
    crossed,
    determinism,
    seed_everything,
    stop_on_signals,
)
from deepfake_lab.training.distributed import (
    SINGLE,
    DistContext,
    all_mean,
    any_rank,
    rank_device,
    resume_trainer,
)
from deepfake_lab.training.gan import GanTrainer, TrainingDiverged
from deepfake_lab.training.gan_config import GanConfig
from deepfake_lab.training.gan_metrics import MetricTracker
from deepfake_lab.training.logger import NullLogger, RunLogger, make_progress


@dataclass
class TrainResult:
    """What a finished (or interrupted) run left behind."""

    run_dir: Path
    checkpoint: Path | None
    nimg: int
    status: str  # "done" | "interrupted" | "time limit" | "cpu limit"
    images_per_sec: float
    signal: int | None = None  # the signal that interrupted the run
    main: bool = True  # False on the ranks > 0 of a data-parallel run, which write nothing


def run_training(
    cfg: GanConfig,
    run_dir: Path,
    dataset: FaceDataset,
    resume_state: dict[str, Any] | None = None,
    console: Console | None = None,
    progress: bool = True,
    tensorboard: bool = True,
    tracker: MetricTracker | None = None,
    ctx: DistContext = SINGLE,
) -> TrainResult:
    """Train in ``run_dir`` until ``cfg.train.kimg`` (or a signal), checkpointing as configured.

    The resolved config is written to ``run_dir/config.yaml``. With ``resume_state`` (a loaded
    checkpoint) the run continues exactly where it stopped. In a data-parallel run (``ctx``)
    every rank calls this; only rank 0 writes.
    """
    device = rank_device(resolve_device(cfg.train.device), ctx)
    if tracker is None and cfg.metrics.every_kimg and ctx.is_main:
        tracker = MetricTracker(cfg, device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)  # the same on every rank: the same initial weights
    if ctx.is_main:
        save_config(cfg, run_dir / "config.yaml")
        logger: RunLogger | NullLogger = RunLogger(
            run_dir, tensorboard=tensorboard, console=console
        )
    else:
        logger, console, progress = NullLogger(), None, False
    try:
        with determinism(cfg.train.deterministic):
            return _train(
                cfg, run_dir, dataset, device, resume_state, logger, console, progress, tracker,
                ctx,
            )  # fmt: skip
    finally:
        logger.close()


def _train(cfg, run_dir, dataset, device, resume_state, logger, console, progress, tracker, ctx):
    """Build the trainer, restore or start, then run the loop."""
    trainer = GanTrainer(cfg, dataset, device, ctx)
    if resume_state is not None:
        resume_trainer(
            trainer,
            resume_state,
            logger,
            ctx,
            lambda: f"kimg {trainer.nimg / 1000:.3f} (step {trainer.step})",
        )
    else:
        if ctx.rank:
            # Distinct global streams per rank (for anything that draws from them, as
            # dropout would), after the identical initial weights.
            torch.manual_seed(cfg.train.seed + 7919 * ctx.rank)
        if ctx.active:
            logger.info(
                f"data-parallel over {ctx.world} processes: {trainer.local_batch} images "
                f"each of a global batch of {cfg.train.batch}"
            )

        logger.info(
            f"training {cfg.model.arch} at {cfg.model.size}px on {len(dataset)} images "
            f"for {cfg.train.kimg} kimg, batch {cfg.train.batch}, device {device}, "
            f"{'bfloat16 autocast' if trainer.use_amp else 'fp32'}"
        )
        if dataset.skipped:
            logger.info(f"skipped {len(dataset.skipped)} unreadable files")
        if trainer.schedule is not None:
            logger.info(trainer.schedule.describe())
        if ctx.is_main:
            save_grid(
                dataset.batch(torch.arange(min(len(dataset), cfg.schedule.grid**2))),
                run_dir / "samples" / "reals.png",
                nrow=cfg.schedule.grid,
            )
            _write_samples(trainer, run_dir, logger)
    return _loop(trainer, run_dir, logger, console, progress, tracker)


def _loop(
    trainer: GanTrainer,
    run_dir: Path,
    logger: RunLogger,
    console,
    progress: bool,
    tracker: MetricTracker | None,
):
    cfg = trainer.cfg
    sched = cfg.schedule
    total = round(cfg.train.kimg * 1000)
    sums: dict[str, float] = defaultdict(float)
    count = 0
    t_tick, n_tick = time.perf_counter(), trainer.nimg
    t0, n0 = t_tick, trainer.nimg
    last_ckpt: Path | None = None
    status = "done"
    ctx = trainer.ctx
    budget = cfg.train.max_minutes * 60 if cfg.train.max_minutes else None
    cpu_budget = cfg.train.max_cpu_minutes * 60 if cfg.train.max_cpu_minutes else None
    cpu0 = time.process_time()

    def log_interval() -> None:
        nonlocal count, t_tick, n_tick
        now, cur = time.perf_counter(), trainer.nimg
        means = {k: v / max(count, 1) for k, v in sums.items()}
        means["Speed/images_per_sec"] = (cur - n_tick) / max(now - t_tick, 1e-9)
        means["LR/G"] = trainer.opt_G.param_groups[0]["lr"]
        means["LR/D"] = trainer.opt_D.param_groups[0]["lr"]
        logger.scalars(cur, means, step=trainer.step)
        sums.clear()
        count = 0
        t_tick, n_tick = now, cur

    bar = make_progress(console, disable=not progress)
    with stop_on_signals() as stop, bar:
        task = bar.add_task(cfg.run.name, total=total / 1000, completed=n0 / 1000, stats="")
        while trainer.nimg < total:
            prev = trainer.nimg
            try:
                stats = trainer.train_step()
            except TrainingDiverged as exc:
                where = (
                    f"the last good checkpoint is {last_ckpt}"
                    if last_ckpt
                    else ("no checkpoint was written in this session")
                )
                raise TrainingDiverged(f"{exc}; {where}") from None
            # Means over the ranks: each rank's losses are those of its slice.
            values = all_mean(torch.stack([v.float().cpu() for v in stats.values()]), ctx)
            values = values.tolist()
            for key, v in zip(stats, values, strict=True):
                sums[key] += v
            count += 1
            cur = trainer.nimg
            rate = (cur - n0) / max(time.perf_counter() - t0, 1e-9)
            bar.update(
                task,
                completed=cur / 1000,
                stats=(
                    f"{rate:.0f} img/s  G {stats['Loss/G'].item():.3f} "
                    f"D {stats['Loss/D'].item():.3f}"
                ),
            )
            # Why this step is the last one, if it is: the schedule, a signal or the budget;
            # agreed by all ranks, so that they stop at the same step.
            signalled, timed_out, cpu_out = any_rank(
                [
                    stop["signal"] is not None,
                    budget is not None and time.perf_counter() - t0 >= budget,
                    cpu_budget is not None and time.process_time() - cpu0 >= cpu_budget,
                ],
                ctx,
            )
            if signalled:
                status = "interrupted"
                stop["signal"] = stop["signal"] or signal.SIGTERM
            elif timed_out:
                status = "time limit"
            elif cpu_out:
                status = "cpu limit"
            last = cur >= total or status != "done"
            if last or crossed(prev, cur, sched.log_kimg):
                log_interval()
            if ctx.is_main and (last or crossed(prev, cur, sched.sample_kimg)):
                _write_samples(trainer, run_dir, logger)
            # Decided from the config alone, the same on every rank (only rank 0 has a
            # tracker), because a checkpoint is a collective step.
            every = cfg.metrics.every_kimg
            evaluate = bool(every) and (last or crossed(prev, cur, every))
            if evaluate or last or crossed(prev, cur, sched.checkpoint_kimg):
                last_ckpt = _write_checkpoint(trainer, run_dir, sched.keep_checkpoints)
            if evaluate and tracker is not None:
                tracker.evaluate(last_ckpt, cur, logger)
            if last:
                break
    elapsed = time.perf_counter() - t0
    rate = (trainer.nimg - n0) / max(elapsed, 1e-9)
    kimg = trainer.nimg / 1000
    if status == "interrupted":
        name = signal.Signals(stop["signal"]).name
        logger.info(
            f"{name} received: checkpoint written at kimg {kimg:.3f}; "
            f"continue with --resume {run_dir}"
        )
    elif status == "time limit":
        logger.info(f"train.max_minutes reached at kimg {kimg:.3f}; checkpoint written")
    elif status == "cpu limit":
        logger.info(f"train.max_cpu_minutes reached at kimg {kimg:.3f}; checkpoint written")
    cpu = time.process_time() - cpu0
    logger.info(
        f"{status}: {kimg:.3f} kimg, {elapsed:.1f}s this session ({rate:.1f} img/s), "
        f"{cpu:.1f} CPU s"
    )
    signum = stop["signal"] if status == "interrupted" else None
    return TrainResult(run_dir, last_ckpt, trainer.nimg, status, rate, signum, ctx.is_main)


def _write_samples(trainer: GanTrainer, run_dir: Path, logger: RunLogger) -> Path:
    """The fixed-latent sample grid of G_ema, written like every generated image: with the
    watermark (fingerprint of G_ema's weights at this step) and AI-generated metadata."""
    grid = make_grid(trainer.sample_grid(), nrow=trainer.cfg.schedule.grid)
    path = run_dir / "samples" / f"grid-{trainer.nimg:010d}.png"
    sha = weights_sha256(trainer.G_ema.state_dict())
    marker = Marker(f"{trainer.cfg.model.arch}:{run_dir.name}", sha)
    marker.write(path, grid, kimg=round(trainer.nimg / 1000, 3))
    logger.image("samples", grid, trainer.nimg)
    return path


def _write_checkpoint(trainer: GanTrainer, run_dir: Path, keep: int) -> Path:
    path = run_dir / "checkpoints" / checkpoint_name(trainer.nimg)
    state = trainer.state_dict()  # on every rank: it gathers the ranks' RNG states
    if trainer.ctx.is_main:
        save_checkpoint(path, state)
        prune_checkpoints(run_dir / "checkpoints", keep)
    return path
