"""``deepfake-lab generate``: sample images from a trained generator."""

from __future__ import annotations

from pathlib import Path

import typer

from deepfake_lab.cli.app import app
from deepfake_lab.cli.common import console, handle_errors


@app.command("generate")
@handle_errors
def generate_cmd(
    source: Path = typer.Argument(..., help="Run folder, checkpoint or export folder."),
    num: int = typer.Option(16, "--num", help="How many images."),
    out: Path = typer.Option(..., "--out", help="Output folder (new or empty)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first image (image i: seed+i)."),
    truncation: float = typer.Option(1.0, "--truncation", help="psi in [0, 1]."),
    grid: bool = typer.Option(False, "--grid", help="Also write grid.png."),
    batch: int = typer.Option(64, "--batch", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
) -> None:
    """Generate PNG images of faces of people who do not exist, with a JSON manifest."""
    from deepfake_lab.generate import generate_images

    manifest = generate_images(
        source, num, out, seed=seed, truncation=truncation, grid=grid, batch=batch, device=device
    )
    console.print(
        f"wrote {manifest['num']} images to {out} "
        f"(model {manifest['model']['arch']}, weights "
        f"{manifest['model']['weights_sha256'][:12]})"
    )
