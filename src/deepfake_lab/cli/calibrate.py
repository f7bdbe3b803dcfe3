"""``deepfake-lab calibrate``: refit a detector's threshold on the user's own images."""

from __future__ import annotations

from pathlib import Path

import typer

from deepfake_lab.cli.common import (
    console,
    device_option,
    fake_option,
    handle_errors,
    manifest_option,
    manifest_outside_option,
    real_option,
    seed_option,
)
from deepfake_lab.safe_text import for_console

#: This module's top-level command(s); :mod:`deepfake_lab.cli.app` adds them to the root.
commands = typer.Typer()


@commands.command("calibrate")
@handle_errors
def calibrate_cmd(
    model: str = typer.Argument(
        ..., help="Detector run folder, checkpoint, export, or released weights (meso4:DF)."
    ),
    out: Path = typer.Option(..., "--out", help="Export folder to write (new or empty)."),
    real: list[Path] = real_option(),
    fake: list[Path] = fake_option(),
    manifest: Path = manifest_option(),
    manifest_outside: bool = manifest_outside_option(),
    pseudo_fake: list[str] = typer.Option(
        [], "--pseudo-fake", help="Also make one pseudo-fake per real face: sbi, sbi-mouth."
    ),
    method: str = typer.Option("eer", "--method", help="eer | fpr (with --target-fpr)."),
    target_fpr: float = typer.Option(
        0.05, "--target-fpr", help="With --method fpr: share of real images called fake."
    ),
    seed: int = seed_option(0, "Pseudo-fake seed"),
    tta: str | None = typer.Option(
        None,
        "--tta",
        help="Test-time view to fit with: none, or flip (mean logit of each image and its "
        "mirror image). Default: the detector's own.",
    ),
    device: str = device_option(),
) -> None:
    """Refit a detector's temperature and threshold on images it did not train on.

    The weights are not changed. The result is an export folder (with index.html and
    scores.png) that detect, eval detector and export read like any other.
    """
    from deepfake_lab.calibrate import calibrate_detector

    res = calibrate_detector(
        model,
        out,
        real,
        fake,
        manifest,
        manifest_outside=manifest_outside,
        pseudo_fake=pseudo_fake,
        method=method,
        target_fpr=target_fpr,
        seed=seed,
        device=device,
        tta=tta,
    )
    b, a = res.before, res.after
    lines = [
        f"calibrated on {', '.join(f'{k} {v}' for k, v in res.counts.items())}: "
        f"threshold {res.record['threshold']:.4g} ({res.record['method']}, "
        f"test-time view {res.record['tta']}); "
        f"real called fake {b['real_called_fake']:.1%} -> {a['real_called_fake']:.1%}, "
        f"fake called fake {b['fake_called_fake']:.1%} -> {a['fake_called_fake']:.1%}",
        f"export: {res.folder}",
        f"report: {res.folder / 'index.html'}",
    ]
    for line in lines:  # one by one: for_console shows a newline inside a value as \x0a
        console.print(for_console(line), highlight=False)
    if res.skipped:
        console.print(for_console(f"skipped {len(res.skipped)} undecodable file(s)"))
