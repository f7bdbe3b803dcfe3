"""``train_gan``: the Python API behind ``deepfake-lab train gan`` (same parameters).

Resolves the config (defaults <- checkpoint when resuming <- YAML file <- flags <- ``--set``),
picks or creates the run folder, loads the data and hands over to :func:`run_training`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from deepfake_lab.config import build_config, flatten
from deepfake_lab.data.dataset import FaceDataset
from deepfake_lab.devices import resolve_device
from deepfake_lab.errors import UserError
from deepfake_lab.runs.checkpoint import list_checkpoints, load_newest_checkpoint
from deepfake_lab.runs.run_dir import (
    create_run_dir,
    latest_run,
    run_dir_of,
    set_aside_later_work,
)
from deepfake_lab.training.distributed import (
    DistContext,
    barrier,
    broadcast,
    distributed_run,
)
from deepfake_lab.training.gan import check_models
from deepfake_lab.training.gan_config import GanConfig
from deepfake_lab.training.gan_loop import TrainResult, run_training
from deepfake_lab.training.gan_metrics import MetricTracker

# Keys that may differ from the checkpoint's config when resuming: they change how long the
# run goes and where it writes, not what it computes. (The device may not change: generator
# states are device-specific, and exactness is only promised on one device.)
RESUMABLE_CHANGES = (
    "metrics.",
    "train.kimg",
    "train.max_minutes",
    "train.max_cpu_minutes",
    "train.threads",
    "data.path",
    "schedule.",
    "run.",
)


def check_resume_compatible(old: GanConfig, new: GanConfig) -> None:
    """Refuse changes that would make a resumed run differ from an uninterrupted one."""
    a, b = flatten(old.model_dump(mode="json")), flatten(new.model_dump(mode="json"))
    bad = [k for k in a if a[k] != b.get(k) and not k.startswith(RESUMABLE_CHANGES)]
    if bad:
        diffs = ", ".join(f"{k}: {a[k]!r} -> {b.get(k)!r}" for k in bad)
        allowed = ", ".join(k + ("*" if k.endswith(".") else "") for k in RESUMABLE_CHANGES)
        raise UserError(
            f"cannot change {diffs} when resuming (only {allowed} may change); "
            "start a new run instead"
        )


def check_resume_data(state: dict[str, Any], dataset: FaceDataset) -> None:
    """An exact resume needs the same images: the sampler's permutation indexes them."""
    n = int(state["sampler"]["n"])
    if n != len(dataset):
        raise UserError(
            f"the checkpoint was trained on {n} images but the data now has "
            f"{len(dataset)}; resume with the same data (--set data.max_images={n} "
            "if images were only added) or start a new run"
        )


def train_gan(
    data: str | Path | None = None,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    arch: str | None = None,
    size: int | None = None,
    kimg: float | None = None,
    batch: int | None = None,
    out: str | Path | None = None,
    name: str | None = None,
    seed: int | None = None,
    device: str | None = None,
    resume: str | None = None,
    dataset: FaceDataset | None = None,
    console: Console | None = None,
    progress: bool = True,
    tensorboard: bool = True,
) -> TrainResult:
    """Train a GAN; returns where it went and how far it got.

    Args:
        data: folder of training images (``data.path``).
        config: YAML config file.
        overrides: ``section.key=value`` strings, applied last.
        arch, size, kimg, batch, out, name, seed, device: shortcuts for the common keys.
        resume: ``auto`` (newest run of this name in ``out`` with a checkpoint; a fresh run
            when there is none) or a run folder / checkpoint path.
        dataset: images already in memory (overrides ``data``), e.g. the demo's faces.
    """
    flags = {
        "data.path": str(data) if data is not None else None,
        "model.arch": arch,
        "model.size": size,
        "train.kimg": kimg,
        "train.batch": batch,
        "run.out": str(out) if out is not None else None,
        "run.name": name,
        "train.seed": seed,
        "train.device": device,
    }
    flag_overrides = [f"{k}={v}" for k, v in flags.items() if v is not None]
    all_overrides = flag_overrides + list(overrides or [])

    fresh = build_config(GanConfig, config, all_overrides)
    # Under torchrun: join the group first; rank 0 alone decides folders and prints.
    with distributed_run(resolve_device(fresh.train.device)) as (ctx, _):
        return _train_gan(
            fresh, config, all_overrides, resume, dataset, ctx,
            console if ctx.is_main else None, progress and ctx.is_main, tensorboard,
        )  # fmt: skip


def _train_gan(
    fresh: GanConfig,
    config: str | Path | None,
    all_overrides: list[str],
    resume: str | None,
    dataset: FaceDataset | None,
    ctx: DistContext,
    console: Console | None,
    progress: bool,
    tensorboard: bool,
) -> TrainResult:
    state = None
    run_dir: Path | None = None
    if resume:
        source = latest_run(fresh.run.out, fresh.run.name) if resume == "auto" else resume
        source = broadcast(source, ctx)
        ckpt = None
        if source is not None:
            # The newest checkpoint that loads: a truncated or damaged newer one (a crash
            # mid-write, a full disk) is skipped, said so, and set aside below with the
            # rest of the work after the one used.
            found = load_newest_checkpoint(source)
            ckpt, state = found.path, found.state
            if console:
                for note in found.notes:
                    console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
        if ckpt is not None and state is not None:
            old = build_config(GanConfig, base=state["config"])
            cfg = build_config(GanConfig, config, all_overrides, base=state["config"])
            check_resume_compatible(old, cfg)
            run_dir = run_dir_of(ckpt)
            if console:
                console.print(f"resuming from {ckpt}")
        elif console:
            console.print(
                f"no run named {fresh.run.name!r} with a checkpoint in "
                f"{fresh.run.out}: starting a new one"
            )
    if state is None:
        cfg = fresh

    check_models(cfg)
    # Built before the run folder, so missing metric weights or references fail first.
    tracker = (
        MetricTracker(cfg, resolve_device(cfg.train.device))
        if cfg.metrics.every_kimg and ctx.is_main
        else None
    )
    if dataset is None:
        if not cfg.data.path:
            raise UserError("no training data: pass --data DIR (a folder of face images)")
        dataset = FaceDataset.from_folder(cfg.data.path, cfg.model.size, cfg.data.max_images)
    if state is not None:
        check_resume_data(state, dataset)
    barrier(ctx)  # every rank has read its checkpoint before rank 0 moves any aside
    if run_dir is None:
        run_dir = broadcast(create_run_dir(cfg.run.out, cfg.run.name) if ctx.is_main else None, ctx)
    elif state is not None and ctx.is_main:
        newer = [p for p in list_checkpoints(run_dir / "checkpoints") if p.name > ckpt.name]
        if newer:
            moved = set_aside_later_work(run_dir, int(state["nimg"]))
            if console:
                console.print(
                    f"resuming from an older checkpoint: moved {len(moved)} later "
                    "checkpoints and grids to abandoned/ folders"
                )
    return run_training(
        cfg,
        run_dir,
        dataset,
        resume_state=state,
        console=console,
        progress=progress,
        tensorboard=tensorboard,
        tracker=tracker,
        ctx=ctx,
    )
