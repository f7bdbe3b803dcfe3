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
    faces: bool = typer.Option(
        False,
        "--faces",
        help="Score the most confident face, detected and aligned as `data prepare` does "
        "(images without one are labelled no_face).",
    ),
    face_detector: str = typer.Option(
        "yunet", "--detector", help="Face detector for --faces: yunet | haar."
    ),
    face_model: Path = typer.Option(
        None, "--face-model", help="YuNet ONNX file (default: the cache; downloaded if missing)."
    ),
    explain: Path = typer.Option(
        None, "--explain", help="Write a Grad-CAM overlay PNG per scored image into this folder."
    ),
) -> None:
    """P(fake) for every image, with the detector's calibrated threshold."""
    from rich.table import Table

    from deepfake_lab.detect import detect_images

    records = detect_images(
        model,
        paths,
        json_path,
        csv_path,
        batch=batch,
        device=device,
        faces=faces,
        face_detector=face_detector,
        face_model=face_model,
        explain_dir=explain,
    )
    table = Table(title=f"{len(records)} images, model {records[0]['model']}")
    for col in ("path", "P(fake)", "label"):
        table.add_column(col, justify="right" if col == "P(fake)" else "left")
    for r in records[:50]:
        p = "" if r["probability"] is None else f"{r['probability']:.4f}"
        table.add_row(r["path"], p, r["label"])
    console.print(table)
    if len(records) > 50:
        console.print(f"... {len(records) - 50} more (use --json or --csv for all)")
    count = {k: sum(r["label"] == k for r in records) for k in ("fake", "no_face", "error")}
    line = (
        f"{count['fake']} of {len(records)} called fake at threshold {records[0]['threshold']:.3f}"
    )
    if faces:
        line += f"; {count['no_face']} without a face"
    if count["error"]:
        line += f"; {count['error']} unreadable"
    console.print(line)
    if explain is not None:
        console.print(f"Grad-CAM overlays in {explain}")
