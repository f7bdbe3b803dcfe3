"""``deepfake-lab demo``: the whole loop on built-in data."""

from __future__ import annotations

from pathlib import Path

import typer

from deepfake_lab.cli.common import (
    console,
    handle_errors,
    no_progress_option,
    out_option,
    set_option,
)

#: This module's top-level command(s); :mod:`deepfake_lab.cli.app` adds them to the root.
commands = typer.Typer()


@commands.command("demo")
@handle_errors
def demo_cmd(
    data: Path = typer.Option(
        None, "--data", help="Use this face folder instead of built-in faces."
    ),
    out: Path = out_option(what="Parent folder of the run folder"),
    overrides: list[str] = set_option("GAN config override"),
    num_images: int = typer.Option(2000, "--num-images", help="Procedural faces to draw."),
    no_progress: bool = no_progress_option(),
    no_metrics: bool = typer.Option(False, "--no-metrics", help="Skip the generator metrics."),
    no_detector: bool = typer.Option(False, "--no-detector", help="Skip the detector section."),
    metrics_weights: Path = typer.Option(
        None, "--metrics-weights", help="resnet56-4bfd9763.th for FD-R56 (default: cache)."
    ),
) -> None:
    """Draw faces, train a small GAN, sample, and write an HTML report (a few minutes on CPU)."""
    from deepfake_lab.demo import run_demo

    run_demo(
        data,
        out,
        overrides,
        num_images=num_images,
        console=console,
        progress=not no_progress,
        metrics=not no_metrics,
        metrics_weights=metrics_weights,
        detector=not no_detector,
    )
