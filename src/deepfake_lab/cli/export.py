"""``deepfake-lab export``: safetensors + config.json (+ ONNX for detectors) from a run."""

from __future__ import annotations

from pathlib import Path

import typer

from deepfake_lab.cli.common import console, handle_errors
from deepfake_lab.safe_text import for_console

#: This module's top-level command(s); :mod:`deepfake_lab.cli.app` adds them to the root.
commands = typer.Typer()


@commands.command("export")
@handle_errors
def export_cmd(
    checkpoint: Path = typer.Argument(
        ...,
        help="GAN or detector run folder, checkpoint file, a detector export folder, or a "
        "released detector (meso4:DF, ...).",
    ),
    out: Path = typer.Option(..., "--out", help="Export folder (new or empty)."),
    onnx: bool = typer.Option(
        False,
        "--onnx",
        help="Detectors: also write model.onnx (dynamic batch), checked against PyTorch "
        "(needs pip install 'deepfake-lab[onnx]').",
    ),
) -> None:
    """Export a GAN's generator (G_ema) or a detector as model.safetensors + config.json."""
    from deepfake_lab.export import export_model

    result = export_model(checkpoint, out, onnx=onnx)
    if result.kind == "generator":
        console.print(
            f"exported the {result.name} generator to {for_console(result.folder)} "
            "(load with deepfake_lab.models.generators.loading.load_generator)"
        )
        return
    console.print(
        f"exported the {result.name} detector to {for_console(result.folder)} (scan with "
        "`deepfake-lab detect DIR ...`; load with "
        "deepfake_lab.models.detectors.loading.load_detector)"
    )
    if result.onnx is not None:
        console.print(for_console(result.onnx.summary()), highlight=False)
