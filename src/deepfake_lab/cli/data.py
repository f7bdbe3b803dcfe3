"""``deepfake-lab data ...``: dataset preparation commands."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from deepfake_lab.cli.common import (
    console,
    device_option,
    face_detector_option,
    face_model_option,
    handle_errors,
    no_progress_option,
    old_face_detector_option,
    pick_face_detector,
    seed_option,
    stage_progress,
)
from deepfake_lab.data.decode import DEFAULT_MAX_PIXELS
from deepfake_lab.safe_text import for_console

data_app = typer.Typer(help="Prepare face datasets.", no_args_is_help=True)


@data_app.command("prepare")
@handle_errors
def prepare(
    src: Path = typer.Argument(
        ...,
        help="Folder of images and/or videos (CelebA, FFHQ, FaceForensics++, VoxCeleb or any "
        "tree of JPEG/PNG/WebP/BMP and MP4/MOV/AVI/MPG/WebM/MKV files).",
    ),
    out: Path = typer.Argument(..., help="Dataset folder to create or add to."),
    size: int = typer.Option(128, "--size", help="Side of the square output crops, in px."),
    face_detector: str = face_detector_option(),
    old_detector: str | None = old_face_detector_option(),
    face_model: Path | None = face_model_option(),
    min_face: int = typer.Option(32, "--min-face", help="Smallest face box side kept, in px."),
    no_align: bool = typer.Option(
        False, "--no-align", help="Centre crop + resize, no detection (pre-aligned sets)."
    ),
    max_pixels: int = typer.Option(
        DEFAULT_MAX_PIXELS, "--max-pixels", help="Reject images with more pixels than this."
    ),
    limit: int | None = typer.Option(
        None, "--limit", help="Only the first N sources (images and videos, sorted by path)."
    ),
    frames_per_video: int = typer.Option(
        32,
        "--frames-per-video",
        help="Frames sampled per video, evenly spaced; every face of each is kept, with its "
        "track id.",
    ),
) -> None:
    """Detect, align and crop faces into OUT/images, with OUT/manifest.jsonl.

    Images: the most confident face of each.
    Videos: N evenly spaced frames, every face of at least --min-face px,
    linked into tracks; records add video_id (sha256[:16] of the file),
    frame_index, timestamp (s) and track_id.
    FaceForensics++ and VoxCeleb trees add label, method, compression,
    speaker and youtube_id.
    Re-runs skip what is done; bad files are listed in OUT/rejected.jsonl.
    """
    from deepfake_lab.data.prepare import prepare_dataset

    summary = prepare_dataset(
        src,
        out,
        size=size,
        detector=pick_face_detector(face_detector, old_detector),
        face_model=face_model,
        min_face=min_face,
        align=not no_align,
        max_pixels=max_pixels,
        limit=limit,
        frames_per_video=frames_per_video,
        progress=True,
        log=_log,
    )
    table = Table(title=f"data prepare -> {for_console(summary.out)}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("found", str(summary.found))
    table.add_row("kept (new)", str(summary.kept))
    table.add_row("already done", str(summary.skipped_done))
    for reason, count in summary.rejected.items():
        table.add_row(f"rejected: {for_console(reason)}", str(count))
    table.add_row("in manifest", str(summary.total_kept))
    if summary.videos_found:
        table.add_row("videos found", str(summary.videos_found))
        table.add_row("videos kept (new)", str(summary.videos_kept))
        table.add_row("videos already done", str(summary.videos_skipped_done))
        table.add_row(
            "frames sampled", f"{summary.frames_sampled} ({summary.frames_per_video}/video)"
        )
        table.add_row("faces kept from videos", str(summary.video_faces_kept))
        table.add_row("face tracks", str(summary.video_tracks))
        if summary.videos_damaged:
            table.add_row("videos cut short (kept in part)", str(summary.videos_damaged))
        if summary.videos_processed:
            table.add_row("time per video", f"{summary.seconds_per_video:.2f} s")
    table.add_row("detector", summary.detector or "none (--no-align)")
    table.add_row("size", f"{summary.size} px")
    unit = "sources" if summary.videos_found else "images"
    table.add_row("speed", f"{summary.images_per_s:.1f} {unit}/s ({summary.elapsed_s:.1f} s)")
    console.print(table)


@data_app.command("zoo")
@handle_errors
def zoo(
    real: Path = typer.Option(..., "--real", help="Folder of real faces to reconstruct."),
    out: Path = typer.Option(..., "--out", help="Zoo folder: one sub-folder per family."),
    families: list[str] = typer.Option(
        [],
        "--families",
        help="Families: comma list and/or globs, e.g. 'tconv-*,*-none-trained' (default: all; "
        "'none': only the --gan samples; repeatable).",
    ),
    size: int = typer.Option(128, "--size", help="Side of every image (the detector's size)."),
    num: int | None = typer.Option(
        None, "--num", help="Use the first N decodable reals (default: all)."
    ),
    steps: int = typer.Option(300, "--steps", help="Training steps of 'trained' families."),
    seed: int = seed_option(0, "Zoo seed (each family derives its own)"),
    gan: list[Path] = typer.Option(
        [], "--gan", help="Also sample a trained GAN (run, checkpoint or export; repeatable)."
    ),
    batch: int = typer.Option(8, "--batch", help="Images per training step / forward pass."),
    device: str = device_option("cpu", "; cpu is reproducible"),
    no_progress: bool = no_progress_option(),
) -> None:
    """Fake faces from many small generator families, for detectors that must generalise.

    Each family (up-sampler tconv/nearest/bilinear/pixelshuffle, with or without
    BatchNorm, trained or untrained) remakes every real face at --size into
    OUT/<family>/, for `train detector --fake OUT/fam1 --fake OUT/fam2 ...`;
    OUT/zoo.json records the families, the reals used and the parameters,
    OUT/manifest.jsonl lists every image, OUT/preview.png shows one row per family.
    Images are tagged AI-generated in their metadata but carry no pixel
    watermark (a watermark only on fakes would be a label a detector learns).
    Re-running into OUT skips finished families.
    """
    from deepfake_lab.data.zoo import PREVIEW, ZOO_JSON, build_zoo, family_names

    stages = {"reals": "loading reals"}
    stages.update({name: name for name in family_names()})
    with stage_progress(stages, disable=no_progress) as report:
        record = build_zoo(
            real,
            out,
            families=families or None,
            size=size,
            num=num,
            steps=steps,
            seed=seed,
            gans=gan,
            batch=batch,
            device=device,
            progress=report,
            log=_log,
        )
    table = Table(title=f"data zoo -> {for_console(out)}")
    for column in ("source", "images", "recon L1", "PSNR dB", "seconds"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for name, fam in record["families"].items():
        table.add_row(
            for_console(name),
            str(fam["count"]),
            f"{fam['recon_l1']:.3f}",
            f"{fam['psnr_db']:.1f}",
            f"{fam['seconds']:.1f}",
        )
    for name, g in record["gans"].items():
        table.add_row(for_console(name), str(g["count"]), "-", "-", f"{g['seconds']:.1f}")
    console.print(table)
    reals = record["reals"]
    skipped = f", {reals['skipped']} unreadable skipped" if reals["skipped"] else ""
    console.print(
        for_console(
            f"{reals['count']} reals at {size} px{skipped}; no pixel watermark (metadata tag "
            f"only); {out / ZOO_JSON}, {out / 'manifest.jsonl'}, {out / PREVIEW}"
        ),
        highlight=False,
    )


def _log(line: str) -> None:
    """A progress line of ``data prepare`` / ``data zoo``: plain text (it names files)."""
    console.print(for_console(line), highlight=False)
