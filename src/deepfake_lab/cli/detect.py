"""``deepfake-lab detect``: scan images and folders with a trained detector."""

from __future__ import annotations

from pathlib import Path

import typer

from deepfake_lab.cli.app import app
from deepfake_lab.cli.common import console, handle_errors


@app.command("detect")
@handle_errors
def detect_cmd(
    model: Path = typer.Argument(..., help="Detector run folder, checkpoint or export."),
    paths: list[Path] = typer.Argument(..., help="Images or folders to scan."),
    json_path: Path = typer.Option(None, "--json", help="Write results as JSON here."),
    csv_path: Path = typer.Option(None, "--csv", help="Write results as CSV here."),
    batch: int = typer.Option(64, "--batch", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
) -> None:
    """P(fake) for every image, with the detector's calibrated threshold."""
    from rich.table import Table

    from deepfake_lab.detect import detect_images

    records = detect_images(model, paths, json_path, csv_path, batch=batch, device=device)
    table = Table(title=f"{len(records)} images, model {records[0]['model'] if records else ''}")
    for col in ("path", "P(fake)", "label"):
        table.add_column(col, justify="right" if col == "P(fake)" else "left")
    for r in records[:50]:
        p = "" if r["probability"] is None else f"{r['probability']:.4f}"
        table.add_row(r["path"], p, r["label"])
    console.print(table)
    if len(records) > 50:
        console.print(f"... {len(records) - 50} more (use --json or --csv for all)")
    fakes = sum(r["label"] == "fake" for r in records)
    console.print(
        f"{fakes} of {len(records)} called fake at threshold {records[0]['threshold']:.3f}"
    )
