"""``train_detector``: the Python API behind ``deepfake-lab train detector``.

Resolves the config (defaults <- checkpoint when resuming <- YAML <- flags <- ``--set``),
collects and splits the data (no file in two splits), warns when real and fake differ in
storage format, and runs :func:`run_detector_training` in a run folder.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape

from deepfake_lab.config import build_config, flatten, save_config
from deepfake_lab.data.detection import (
    REAL,
    DetectionDataset,
    DetectionSample,
    collect_samples,
    split_samples,
)
from deepfake_lab.data.format_check import check_formats
from deepfake_lab.data.pseudo import PseudoFakeSet
from deepfake_lab.data.resolution import check_resolution
from deepfake_lab.devices import resolve_device
from deepfake_lab.errors import UserError
from deepfake_lab.faces.landmarks import Landmarker
from deepfake_lab.runs.checkpoint import load_newest_checkpoint
from deepfake_lab.runs.run_dir import create_run_dir, run_dir_of
from deepfake_lab.training.common import determinism, seed_everything
from deepfake_lab.training.detector import KIND, build_augment, build_model
from deepfake_lab.training.detector_config import DetectorConfig
from deepfake_lab.training.detector_loop import DetectorResult, run_detector_training
from deepfake_lab.training.detector_report import (
    PSEUDO_PREVIEW,
    save_pseudo_preview,
    write_detector_report,
)
from deepfake_lab.training.distributed import DistContext, broadcast, distributed_run
from deepfake_lab.training.logger import NullLogger, RunLogger

# May differ when resuming. Note: a new train.epochs re-stretches the cosine schedule, so
# only an unchanged config continues bit-exactly.
RESUMABLE = (
    "train.epochs",
    "train.max_minutes",
    "train.threads",
    "train.keep_checkpoints",
    "train.patience",
    "run.",
    "data.real",
    "data.fake",
    "data.manifest",
    "calibration.",
)


#: Every image that could not be decoded, one JSON line each, in the run folder.
SKIPPED = "skipped.jsonl"


def skipped_images(*sets: DetectionDataset | PseudoFakeSet) -> list[tuple[Path, str]]:
    """(path, reason) of every image the sets left out because it did not decode."""
    return [
        item
        for ds in sets
        for item in (ds.base.skipped if isinstance(ds, PseudoFakeSet) else ds.skipped)
    ]


def skipped_warning(samples: list[DetectionSample], skipped: list[tuple[Path, str]]) -> str | None:
    """One line saying how many images of each class were left out and what is left."""
    if not skipped:
        return None
    label_of = {s.path: s.label for s in samples}
    gone = Counter("real" if label_of.get(p) == REAL else "fake" for p, _ in skipped)
    have = Counter("real" if s.label == REAL else "fake" for s in samples)
    examples = "; ".join(f"{p.name} ({why})" for p, why in skipped[:3])
    more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    return (
        f"{len(skipped)} of {len(samples)} images could not be decoded and are left out "
        f"({gone['real']} real, {gone['fake']} fake: {have['real'] - gone['real']} real and "
        f"{have['fake'] - gone['fake']} fake remain): {examples}{more}; all are listed in "
        f"{SKIPPED}"
    )


def _flag_overrides(flags: dict[str, Any]) -> list[str]:
    # JSON is valid YAML, so lists and paths survive the --set parser unchanged.
    return [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]


def load_detector_data(
    cfg: DetectorConfig, console: Console | None = None
) -> tuple[DetectionDataset | PseudoFakeSet, DetectionDataset, list[str]]:
    """Train and validation sets for ``cfg`` plus the warnings about the data; the side every
    image was floored to (``data.native_size=floor``) is the sets' ``native_floor``.

    With ``data.pseudo_fake``, the training set makes its pseudo-fakes on the fly and the
    validation set holds one fixed pseudo-fake per real face. Classes that differ in
    resolution history are refused (``data.native_size=check``), floored to one history
    (``floor``) or kept with a warning (``ignore``).

    Raises:
        UserError: no data, an empty validation split, or classes that differ in native
            size under ``data.native_size=check``.
    """
    d = cfg.data
    samples = collect_samples(
        [Path(p) for p in d.real],
        [Path(p) for p in d.fake],
        Path(d.manifest) if d.manifest else None,
        require_fake=not d.pseudo_fake,
        manifest_outside=d.manifest_outside,
    )
    if d.max_images is not None and len(samples) > d.max_images:
        keep = np.random.default_rng(cfg.train.seed).permutation(len(samples))[: d.max_images]
        samples = [samples[i] for i in sorted(keep)]
    warnings = check_formats(samples)
    history, problem = check_resolution(samples, cfg.model.size, d.native_size)
    floor = None
    if problem and d.native_size == "floor":
        floor = history.floor_side
        warnings.append(
            f"{problem}; every image is brought down to {floor} px and back up "
            "(data.native_size=floor)"
        )
    elif problem:
        warnings.append(f"{problem} (kept: data.native_size=ignore)")
    splits = split_samples(samples, val=d.val, seed=cfg.train.seed)
    if not splits["val"]:
        raise UserError(
            f"the validation split is empty ({len(samples)} images); add images or raise data.val"
        )
    train = DetectionDataset.from_samples(
        splits["train"], cfg.model.size, reencode=d.reencode, native_floor=floor
    )
    val = DetectionDataset.from_samples(
        splits["val"], cfg.model.size, reencode=d.reencode, native_floor=floor
    )
    dropped = skipped_warning(samples, skipped_images(train, val))
    if dropped:
        warnings.append(dropped)
    if not d.pseudo_fake:
        return train, val, warnings
    landmarker = Landmarker(d.landmarks, d.face_model)
    pseudo_train = PseudoFakeSet.build(
        train, d.pseudo_fake, landmarker, d.pseudo_paired, d.sbi_resample
    )
    pseudo_val = PseudoFakeSet.build(
        val, d.val_pseudo_fake or d.pseudo_fake, landmarker, resample=d.sbi_resample
    )
    if landmarker.fallbacks:
        warnings.append(
            f"no face found by {landmarker.kind} in {landmarker.fallbacks} real image(s): "
            "their pseudo-fake masks use the alignment template (right for aligned crops)"
        )
    return pseudo_train, pseudo_val.materialise(cfg.train.seed), warnings


def _write_skipped(
    path: Path, train: DetectionDataset | PseudoFakeSet, val: DetectionDataset
) -> None:
    from deepfake_lab.io import atomic_write_text

    lines = [
        json.dumps({"split": split, "path": str(p), "reason": why})
        for split, ds in (("train", train), ("val", val))
        for p, why in skipped_images(ds)
    ]
    if lines or path.exists():  # a resumed run rewrites its list
        atomic_write_text(path, "".join(f"{line}\n" for line in lines))


def train_detector(
    real: list[str | Path] | None = None,
    fake: list[str | Path] | None = None,
    manifest: str | Path | None = None,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    model: str | None = None,
    size: int | None = None,
    epochs: int | None = None,
    out: str | Path | None = None,
    name: str | None = None,
    init: str | Path | None = None,
    freeze: str | None = None,
    seed: int | None = None,
    device: str | None = None,
    resume: str | Path | None = None,
    adv_train: bool = False,
    pseudo_fake: list[str] | None = None,
    console: Console | None = None,
    progress: bool = True,
    tensorboard: bool = True,
) -> DetectorResult:
    """Train a real-vs-fake detector; returns the run folder and its best checkpoint.

    Args:
        real, fake: folders of real images and of fakes (each fake folder is one source).
        manifest: JSONL of ``path``, ``label`` (real/fake), optional ``source``/``group``.
        config, overrides: YAML file and ``section.key=value`` strings.
        model, size, epochs, out, name, init, freeze, seed, device: shortcuts for
            ``model.arch``, ``model.size``, ``train.epochs``, ``run.out``, ``run.name``,
            ``model.init``, ``model.freeze``, ``train.seed``, ``train.device``.
        resume: a detector run folder or checkpoint to continue exactly.
        adv_train: harden the detector with PGD examples (``adv.enabled=true``; budget and
            share in the ``adv`` config section). False leaves the config's value alone.
        pseudo_fake: pseudo-fake kinds made from the real faces (``data.pseudo_fake``):
            ``sbi``, ``sbi-mouth``; alone or beside ``fake``.
    """
    flags = {
        "data.real": [str(p) for p in real] if real else None,
        "data.fake": [str(p) for p in fake] if fake else None,
        "data.manifest": str(manifest) if manifest else None,
        "model.arch": model,
        "model.size": size,
        "train.epochs": epochs,
        "run.out": str(out) if out is not None else None,
        "run.name": name,
        "model.init": str(init) if init else None,
        "model.freeze": freeze,
        "train.seed": seed,
        "train.device": device,
        "adv.enabled": True if adv_train else None,
        "data.pseudo_fake": list(pseudo_fake) if pseudo_fake else None,
    }
    all_overrides = _flag_overrides(flags) + list(overrides or [])
    # Under torchrun: join the group first; rank 0 alone writes and prints.
    device = resolve_device(build_config(DetectorConfig, config, all_overrides).train.device)
    with distributed_run(device) as (ctx, dev):
        return _train_detector(
            config, all_overrides, resume, ctx, dev,
            console if ctx.is_main else None, progress and ctx.is_main, tensorboard,
        )  # fmt: skip


def _train_detector(
    config: str | Path | None,
    all_overrides: list[str],
    resume: str | Path | None,
    ctx: DistContext,
    dev: torch.device,
    console: Console | None,
    progress: bool,
    tensorboard: bool,
) -> DetectorResult:
    state, run_dir = None, None
    if resume:
        found = load_newest_checkpoint(resume)  # skips damaged newer ones
        ckpt, state = found.path, found.state
        if console:
            for note in found.notes:
                console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
        if state.get("kind") != KIND:
            raise UserError(f"{ckpt} is not a detector checkpoint")
        old = build_config(DetectorConfig, base=state["config"])
        cfg = build_config(DetectorConfig, config, all_overrides, base=state["config"])
        a, b = flatten(old.model_dump(mode="json")), flatten(cfg.model_dump(mode="json"))
        bad = [k for k in a if a[k] != b.get(k) and not k.startswith(RESUMABLE)]
        if bad:
            raise UserError(f"cannot change {', '.join(bad)} when resuming; start a new run")
        run_dir = run_dir_of(ckpt)
    else:
        cfg = build_config(DetectorConfig, config, all_overrides)
    build_model(cfg)  # a bad model name or kwargs fails before anything is written
    build_augment(cfg)
    train, val, warnings = load_detector_data(cfg, console)
    for w in warnings:
        if console:  # the warnings name files: their names are not markup
            console.print(f"[bold yellow]warning:[/] {escape(w)}", highlight=False)
    if run_dir is None:
        run_dir = broadcast(create_run_dir(cfg.run.out, cfg.run.name) if ctx.is_main else None, ctx)
    if ctx.is_main:
        save_config(cfg, run_dir / "config.yaml")
        _write_skipped(run_dir / SKIPPED, train, val)
        logger: RunLogger | NullLogger = RunLogger(
            run_dir, tensorboard=tensorboard, console=console
        )
    else:
        logger = NullLogger()
    try:
        for w in warnings:
            logger.info(f"warning: {w}")
        logger.info(
            f"detector {cfg.model.arch} at {cfg.model.size}px: train {train.counts()}, "
            f"val {val.counts()}"
        )
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        if isinstance(train, PseudoFakeSet):
            logger.info(
                f"pseudo-fakes {'+'.join(train.kinds)} from {train.n_pseudo} real faces, "
                f"landmarks: {', '.join(sorted(set(train.landmark_sources)))}"
            )
            if ctx.is_main:
                save_pseudo_preview(train, run_dir / PSEUDO_PREVIEW, seed=cfg.train.seed)
        seed_everything(cfg.train.seed)
        with determinism(cfg.train.deterministic):
            result = run_detector_training(
                cfg,
                run_dir,
                train,
                val,
                dev,
                logger,
                resume_state=state,
                console=console,
                progress=progress,
                native_floor=val.native_floor,
                ctx=ctx,
            )
    finally:
        logger.close()
    if ctx.is_main:
        write_detector_report(run_dir)
    return result
