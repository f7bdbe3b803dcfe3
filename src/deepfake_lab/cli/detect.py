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
    paths: list[Path] = typer.Argument(..., help="Images, videos or folders to scan."),
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
    timeline: Path = typer.Option(
        None, "--timeline", help="Videos: write a P(fake)-over-time PNG per video here."
    ),
    aggregate: str = typer.Option(
        "mean", "--aggregate", help="Videos: mean | max-face | topk (frame scores -> video)."
    ),
    topk: int = typer.Option(5, "--topk", help="Videos: k of --aggregate topk."),
    stride: int = typer.Option(1, "--stride", help="Videos: score every Nth frame."),
    max_frames: int = typer.Option(None, "--max-frames", help="Videos: at most N frames."),
    frames: int = typer.Option(
        None, "--frames", help="Videos: instead of --stride, N evenly spaced frames."
    ),
) -> None:
    """P(fake) for every image and video, with the detector's calibrated threshold."""
    from deepfake_lab.video.detect_video import split_media

    images, videos = split_media(paths)
    if images or not videos:
        _scan_images(
            model,
            images,
            json_path,
            csv_path,
            batch,
            device,
            faces,
            face_detector,
            face_model,
            explain,
        )
    if videos:
        from rich.table import Table

        from deepfake_lab.video.detect_video import detect_video_files

        # After the images: their JSON file gets the videos added under "videos".
        vrecs = detect_video_files(
            model,
            videos,
            json_path,
            timeline,
            aggregate,
            topk,
            stride,
            max_frames,
            device,
            face_detector,
            face_model,
            merge_json=bool(images),
            frames=frames,
        )
        table = Table(title=f"{len(vrecs)} videos ({aggregate} of the face scores)")
        for col in ("video", "P(fake)", "label", "frames", "tracks"):
            table.add_column(col)
        for r in vrecs:
            p = "" if r["probability"] is None else f"{r['probability']:.4f}"
            n_tracks = str(len(r.get("tracks", [])))
            table.add_row(r["path"], p, r["label"], str(r.get("frames", "")), n_tracks)
        console.print(table)
        if timeline is not None:
            console.print(f"timelines in {timeline}")


def _scan_images(
    model, paths, json_path, csv_path, batch, device, faces, face_detector, face_model, explain
) -> None:
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
    for col in ("path", "P(fake)", "label", "our watermark"):
        table.add_column(col, justify="right" if col == "P(fake)" else "left")
    for r in records[:50]:
        p = "" if r["probability"] is None else f"{r['probability']:.4f}"
        mark = f"yes ({r['watermark_fingerprint']})" if r["watermark"] else ""
        table.add_row(r["path"], p, r["label"], mark)
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
    marked = sum(bool(r["watermark"]) for r in records)
    if marked:
        line += f"; {marked} carry this tool's watermark (generated by deepfake-lab)"
    console.print(line)
    if explain is not None:
        console.print(f"Grad-CAM overlays in {explain}")
