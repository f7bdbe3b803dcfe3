"""``deepfake-lab reconstruct``: encode and decode images with an autoencoder generator."""

from __future__ import annotations

from pathlib import Path

import typer

from deepfake_lab.cli.common import (
    console,
    device_option,
    handle_errors,
    no_watermark_option,
    secret_file_option,
    watermark_strength_option,
)
from deepfake_lab.safe_text import for_console

#: This module's top-level command(s); :mod:`deepfake_lab.cli.app` adds them to the root.
commands = typer.Typer()


@commands.command("reconstruct")
@handle_errors
def reconstruct_cmd(
    source: Path = typer.Argument(..., help="Run folder, checkpoint or export of a --arch vae."),
    paths: list[Path] = typer.Argument(..., help="Images or folders to reconstruct."),
    out: Path = typer.Option(..., "--out", help="Output folder (new or empty)."),
    batch: int = typer.Option(64, "--batch", help="Images per forward pass."),
    device: str = device_option(),
    no_watermark: bool = no_watermark_option(),
    secret_file: Path | None = secret_file_option(
        "Owner secret for the watermark's HMAC code (or $DEEPFAKE_LAB_WATERMARK_SECRET)"
    ),
    strength: float = watermark_strength_option(),
) -> None:
    """Encode and decode images with a VAE: reconstructions (watermarked and tagged like every
    generated image), inputs and reconstructions side by side in grid.png, and each image's
    error in reconstruct.json."""
    from deepfake_lab.provenance.marking import ProvenanceOptions
    from deepfake_lab.reconstruct import reconstruct_images

    options = ProvenanceOptions(
        watermark=not no_watermark, secret_file=secret_file, strength=strength
    )
    m = reconstruct_images(
        source,
        paths,
        out,
        batch=batch,
        device=device,
        provenance=options,
        log=lambda msg: console.print(f"[yellow]note:[/] {for_console(msg)}", highlight=False),
    )
    console.print(
        f"{len(m['images'])} reconstructions in {out}: mean L1 {m['mean_l1']} (0-255), "
        f"grid {out / 'grid.png'}",
        highlight=False,
        markup=False,
    )
