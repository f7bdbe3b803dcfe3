"""``deepfake-lab export``: safetensors + config.json from a training checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from deepfake_lab.cli.app import app
from deepfake_lab.cli.common import console, handle_errors


@app.command("export")
@handle_errors
def export_cmd(
    checkpoint: Path = typer.Argument(..., help="Run folder or checkpoint file."),
    out: Path = typer.Option(..., "--out", help="Export folder."),
) -> None:
    """Export the generator (G_ema) as model.safetensors + config.json."""
    from deepfake_lab.export import export_generator

    folder = export_generator(checkpoint, out)
    console.print(f"exported to {folder} (load with deepfake_lab.export.load_generator)")
