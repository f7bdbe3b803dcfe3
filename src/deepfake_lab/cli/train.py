"""``deepfake-lab train ...``: training commands."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from deepfake_lab.cli.common import (
    config_option,
    console,
    detector_arch_option,
    device_option,
    fake_option,
    gan_arch_option,
    handle_errors,
    manifest_option,
    manifest_outside_option,
    no_progress_option,
    old_arch_option,
    out_option,
    pick_arch,
    real_option,
    seed_option,
    set_option,
)

train_app = typer.Typer(help="Train models.", no_args_is_help=True)


@train_app.command("gan")
@handle_errors
def train_gan_cmd(
    data: Path = typer.Option(None, "--data", help="Folder of face images."),
    config: Path = config_option(),
    overrides: list[str] = set_option(),
    arch: str = gan_arch_option(),
    size: int = typer.Option(None, "--size", help="Image size in px (model.size)."),
    kimg: float = typer.Option(None, "--kimg", help="Length in thousands of images shown."),
    batch: int = typer.Option(None, "--batch", help="Batch size."),
    out: Path = out_option(None, "Parent folder of run folders (default runs/)"),
    name: str = typer.Option(None, "--name", help="Run name (folder runs/NNNNN-NAME)."),
    seed: int = seed_option(None),
    device: str = device_option(None, " (default: the config's train.device)"),
    resume: str = typer.Option(None, "--resume", help="auto, or a run folder or checkpoint."),
    no_progress: bool = no_progress_option(),
) -> None:
    """Train a GAN on a folder of faces; writes a run folder with checkpoints and samples."""
    from deepfake_lab.training.launch import train_gan
    from deepfake_lab.training.report import write_gan_report

    result = train_gan(
        data,
        config,
        overrides,
        arch=arch,
        size=size,
        kimg=kimg,
        batch=batch,
        out=out,
        name=name,
        seed=seed,
        device=device,
        resume=resume,
        console=console,
        progress=not no_progress,
    )
    if result.main:  # under torchrun, rank 0 alone reports
        report = write_gan_report(result.run_dir)
        console.print(f"run folder: {result.run_dir}\nreport: {report}", markup=False)
    if result.signal is not None:  # the shell convention: 128 + signal number
        raise typer.Exit(128 + result.signal)


@train_app.command("detector")
@handle_errors
def train_detector_cmd(
    real: list[Path] = real_option(),
    fake: list[Path] = fake_option(),
    manifest: Path = manifest_option(),
    arch: str = detector_arch_option(),
    old_model: str | None = old_arch_option(),
    size: int = typer.Option(None, "--size", help="Input size in px (model.size)."),
    epochs: int = typer.Option(None, "--epochs", help="Training epochs."),
    out: Path = out_option(None, "Parent folder of run folders (default runs/)"),
    name: str = typer.Option(None, "--name", help="Run name."),
    init: Path = typer.Option(
        None,
        "--init",
        help="Detector or GAN run folder or checkpoint, detector export, or released "
        "weights (meso4:DF), to start from.",
    ),
    freeze: str = typer.Option(None, "--freeze", help="none | backbone."),
    config: Path = config_option(),
    overrides: list[str] = set_option(),
    seed: int = seed_option(None),
    device: str = device_option(None, " (default: the config's train.device)"),
    resume: str = typer.Option(None, "--resume", help="A detector run folder or checkpoint."),
    adv_train: bool = typer.Option(
        False,
        "--adv-train",
        help="Harden with PGD examples (adv.enabled=true; adv.eps, adv.steps, adv.ratio).",
    ),
    pseudo_fake: list[str] = typer.Option(
        [],
        "--pseudo-fake",
        help="Make fakes from the real faces on the fly (repeatable): sbi (self-blended "
        "face), sbi-mouth (self-blended lower face); --fake is then optional.",
    ),
    no_progress: bool = no_progress_option(),
) -> None:
    """Train a real-vs-fake detector, calibrated on a validation split."""
    model = pick_arch(arch, old_model)
    from deepfake_lab.training.detector_launch import train_detector

    result = train_detector(
        real,
        fake,
        manifest,
        config,
        overrides,
        model=model,
        size=size,
        epochs=epochs,
        out=out,
        name=name,
        init=init,
        freeze=freeze,
        seed=seed,
        device=device,
        resume=resume,
        adv_train=adv_train,
        pseudo_fake=pseudo_fake,
        console=console,
        progress=not no_progress,
    )
    if result.main:  # under torchrun, rank 0 alone reports
        console.print(
            escape(
                f"run folder: {result.run_dir}\nbest checkpoint: {result.best} "
                f"({result.status})\nreport: {result.run_dir / 'index.html'}"
            ),
            highlight=False,
        )
    if result.signal is not None:
        raise typer.Exit(128 + result.signal)


@train_app.command("fusion")
@handle_errors
def train_fusion_cmd(
    member: list[str] = typer.Option(
        ..., "--member", help="A member detector: run, checkpoint, export or meso4:DF (2+)."
    ),
    real: list[Path] = real_option(),
    fake: list[Path] = fake_option(),
    manifest: Path = manifest_option(),
    manifest_outside: bool = manifest_outside_option(),
    pseudo_fake: list[str] = typer.Option(
        [], "--pseudo-fake", help="Also make pseudo-fakes from the reals: sbi, sbi-mouth."
    ),
    size: int = typer.Option(None, "--size", help="Input size (default: the largest member's)."),
    out: Path = out_option(),
    name: str = typer.Option("fusion", "--name", help="Run name."),
    seed: int = seed_option(0, "Split and pseudo-fake seed"),
    margin: float = typer.Option(
        2.0, "--margin", help="Calibrated-logit confidence past which a member overrules."
    ),
    ood_quantile: float = typer.Option(
        0.99, "--ood-quantile", help="Share of calibration images counted in-distribution."
    ),
    device: str = device_option(),
) -> None:
    """Fit a calibrated stacker over member detectors, with an "uncertain" verdict.

    The images are split in two halves: the stacker and the out-of-distribution statistics
    are fitted on one, the thresholds on the other. Members should not have trained on them.
    """
    from deepfake_lab.training.fusion import train_fusion

    run_dir = train_fusion(
        member,
        real,
        fake,
        manifest,
        manifest_outside=manifest_outside,
        pseudo_fake=pseudo_fake,
        size=size,
        out=out,
        name=name,
        seed=seed,
        margin=margin,
        ood_quantile=ood_quantile,
        device=device,
    )
    console.print(
        escape(f"run folder: {run_dir}\nreport: {run_dir / 'index.html'}"), highlight=False
    )
