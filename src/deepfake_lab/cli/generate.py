"""``deepfake-lab generate``: sample images from a trained generator."""

from __future__ import annotations

from pathlib import Path

import typer

from deepfake_lab.cli.app import app
from deepfake_lab.cli.common import console, handle_errors
from deepfake_lab.provenance.watermark import DEFAULT_STRENGTH


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
    no_watermark: bool = typer.Option(
        False, "--no-watermark", help="Do not embed the invisible watermark (recorded)."
    ),
    secret_file: Path | None = typer.Option(
        None,
        "--secret-file",
        help="Owner secret for the watermark's HMAC code (or $DEEPFAKE_LAB_WATERMARK_SECRET).",
    ),
    strength: float = typer.Option(
        DEFAULT_STRENGTH, "--watermark-strength", help="Higher: more robust, more visible."
    ),
    sign_key: Path | None = typer.Option(None, "--sign-key", help="C2PA signing key (PEM)."),
    sign_cert: Path | None = typer.Option(
        None, "--sign-cert", help="C2PA certificate chain (PEM)."
    ),
    sign_alg: str = typer.Option("es256", "--sign-alg", help="C2PA signing algorithm."),
) -> None:
    """Generate PNG images of faces of people who do not exist, with a JSON manifest.

    Every image carries an invisible watermark and AI-generated metadata (read them with
    ``deepfake-lab verify``); with --sign-key/--sign-cert also a signed C2PA manifest.
    """
    from deepfake_lab.generate import generate_images
    from deepfake_lab.provenance.marking import ProvenanceOptions

    options = ProvenanceOptions(
        watermark=not no_watermark,
        secret_file=secret_file,
        strength=strength,
        sign_key=sign_key,
        sign_cert=sign_cert,
        sign_algorithm=sign_alg,
    )
    manifest = generate_images(
        source,
        num,
        out,
        seed=seed,
        truncation=truncation,
        grid=grid,
        batch=batch,
        device=device,
        provenance=options,
        log=lambda msg: console.print(f"[yellow]note:[/] {msg}"),
    )
    if no_watermark:
        console.print("[yellow]--no-watermark: images are tagged but not watermarked[/]")
    console.print(
        f"wrote {manifest['num']} images to {out} "
        f"(model {manifest['model']['arch']}, weights "
        f"{manifest['model']['weights_sha256'][:12]})"
    )
