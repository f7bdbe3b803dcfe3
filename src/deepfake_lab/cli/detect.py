"""``deepfake-lab detect``: scan images and folders with a trained detector."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import typer

from deepfake_lab.cli.common import (
    console,
    device_option,
    err_console,
    face_detector_option,
    face_model_option,
    handle_errors,
    json_option,
    no_progress_option,
    old_face_detector_option,
    pick_face_detector,
    stage_progress,
)
from deepfake_lab.errors import without_path
from deepfake_lab.safe_text import for_console

#: This module's top-level command(s); :mod:`deepfake_lab.cli.app` adds them to the root.
commands = typer.Typer()


@commands.command("detect")
@handle_errors
def detect_cmd(
    targets: list[str] = typer.Argument(
        ...,
        metavar="[MODEL] PATH...",
        help="MODEL: a detector run folder, checkpoint or export, or a released detector "
        "(meso4, meso4:F2F, mesoinception, mesoinception:F2F); left out, meso4:DF answers "
        "(downloaded once). PATH: images, videos or folders to scan.",
    ),
    json_path: Path = json_option(
        "Write results as JSON here; a name ending in .jsonl gets one line per file as it is "
        "scored, and a rerun skips the files it holds (same bytes, same model)"
    ),
    csv_path: Path = typer.Option(None, "--csv", help="Write results as CSV here."),
    batch: int = typer.Option(64, "--batch", help="Images per forward pass."),
    device: str = device_option(),
    faces: bool = typer.Option(
        None,
        "--faces/--no-faces",
        help="Score the most confident face, detected and aligned as `data prepare` does "
        "(images without one are labelled no_face); default: on when no MODEL is named.",
        show_default=False,
    ),
    all_faces: bool = typer.Option(
        False,
        "--all-faces",
        help="Images, with --faces: score every face; each image answers with its most "
        "suspicious face, and the JSON lists every face's score.",
    ),
    face_detector: str = face_detector_option("Face detector for --faces: "),
    old_detector: str | None = old_face_detector_option(),
    face_model: Path = face_model_option(),
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
    sync: bool = typer.Option(
        False, "--sync", help="Videos with audio: also read the lip/speech offset (av-sync)."
    ),
    lips: str = typer.Option(
        "auto", "--lips", help="With --sync: the 68-point lip opening: auto | on | off."
    ),
    report: Path = typer.Option(
        None, "--report", help="Write index.html with tables, timelines and sync plots here."
    ),
    start: float = typer.Option(None, "--start", help="Videos: from this time (seconds)."),
    end: float = typer.Option(None, "--end", help="Videos: up to this time (seconds)."),
    shard: str = typer.Option(
        None,
        "--shard",
        help="I/N: scan only shard I of N (0 <= I < N) of the files, chosen by a hash of "
        "each path; `merge` joins the shards' outputs. Default under torchrun: RANK/WORLD_SIZE. "
        "{shard} in --json, --csv or --report becomes I-of-N.",
    ),
    workers: int = typer.Option(
        None,
        "--workers",
        help="Images: threads that read and decode files ahead of the scoring (0: inline); "
        "default: the CPUs, at most 4.",
    ),
    no_progress: bool = no_progress_option(),
) -> None:
    """P(fake) for every image and video, with the detector's calibrated threshold."""
    face_detector = pick_face_detector(face_detector, old_detector)
    from deepfake_lab.detect import split_model_argument
    from deepfake_lab.errors import UserError
    from deepfake_lab.io import check_output_paths
    from deepfake_lab.video.detect_video import check_video_options, split_media

    model, names, defaulted = split_model_argument(targets)
    paths = [Path(n) for n in names]
    if faces is None:
        faces = defaulted  # the released detectors read aligned face crops
    if defaulted:
        console.print(
            for_console(
                f"no model named: {model} answers (MesoNet, the authors' weights trained on "
                "Deepfake face swaps; uncalibrated, threshold 0.5; faces detected and aligned). "
                'Its "real" is no evidence of authenticity (it called 14% of FFHQ photos '
                "fake and a FaceForensics++ face swap real: docs/model-cards.md). Name a "
                "detector you trained or fused for better-founded answers."
            ),
            highlight=False,
        )

    from deepfake_lab.scan_output import is_jsonl
    from deepfake_lab.scan_shard import resolve_shard, shard_device, shard_output

    part = resolve_shard(shard)  # before anything is read: a bad --shard is one line
    json_path, csv_path, report = (shard_output(p, part) for p in (json_path, csv_path, report))
    if part is not None and part.from_env:
        device = shard_device(device, part)
        where = ", ".join(for_console(p) for p in (json_path, csv_path, report) if p) or "none"
        console.print(
            f"torchrun: this process scans shard {part} (RANK/WORLD_SIZE); outputs: {where}",
            highlight=False,
        )
    if lips not in ("auto", "on", "off"):
        raise UserError(f"--lips must be auto, on or off, got {lips!r}")
    if batch < 1:
        raise UserError(f"--batch must be 1 or more, got {batch}")
    check_output_paths(
        {"--json": json_path, "--csv": csv_path},
        {"--timeline": timeline, "--report": report, "--explain": explain},
    )
    images, found_videos = split_media(paths)
    if found_videos:  # checked before the images are scanned and their results written
        check_video_options(aggregate, topk, stride, max_frames, frames, start, end)
        if is_jsonl(json_path):
            raise UserError(
                f"--json {json_path}: .jsonl streams and resumes image scans only, and "
                f"{len(found_videos)} video(s) are among the paths; scan the videos with a "
                ".json output (--shard works for both)"
            )
    elif start is not None or end is not None:
        raise UserError("--start/--end are for videos, and none was given")
    # Videos go to shards by the rule images follow (a hash of the path).
    videos = [v for v in found_videos if part is None or part.holds(v)]
    irecs, vrecs = [], []
    if images or not found_videos:
        irecs = _scan_images(
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
            all_faces,
            part,
            workers,
        )
    if part is not None and found_videos:
        console.print(f"shard {part}: {len(videos)} of {len(found_videos)} videos", highlight=False)
    if videos:
        from deepfake_lab.video.detect_video import detect_video_files

        stages = {"videos": "videos", "frames": "frames (this video)", "sync": "av-sync"}
        with (
            _saved_on_interrupt(json_path),
            stage_progress(stages, disable=no_progress) as progress,
        ):
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
                sync=sync,
                lips=lips,
                report_dir=report,
                start_s=start,
                end_s=end,
                progress=progress,
            )
        _video_table(vrecs, aggregate, sync, frames)
        if timeline is not None:
            console.print(f"timelines in {for_console(timeline)}", highlight=False)
    if report is not None and (irecs or vrecs):
        from deepfake_lab.report.detect_report import write_detect_report

        first = (irecs or vrecs)[0]
        page = write_detect_report(report, first["model"], first["threshold"], irecs, vrecs)
        console.print(f"report: {for_console(page)}", highlight=False)


@contextlib.contextmanager
def _saved_on_interrupt(json_path: Path | None) -> Iterator[None]:
    """Ctrl-C during the video scan: say where the finished videos were kept, exit 130."""
    from deepfake_lab.video.detect_video import ScanInterrupted

    try:
        yield
    except ScanInterrupted as stop:
        n, saved = len(stop.records), stop.saved_to
        kept = f"; the {n} video(s) finished are in {for_console(saved)}" if saved else ""
        err_console.print(f"interrupted{kept}", highlight=False)
        raise typer.Exit(130) from None


def _video_table(records: list[dict], aggregate: str, sync: bool, frames: int | None) -> None:
    from rich.table import Table

    from deepfake_lab.report.detect_report import sync_cell

    table = Table(title=f"{len(records)} videos ({aggregate} of the face scores)")
    cols = ["video", "P(fake)", "label", "frames", "tracks", "jitter", "flicker", "our mark"]
    for col in cols + (["av-sync (conf, chance p)"] if sync else []):
        # Names wrap rather than being cut: two clips may differ only at the end.
        table.add_column(col, overflow="fold")
    for r in records:
        c = r.get("consistency") or {}

        def num(v: float | None, fmt: str = "{:.3f}") -> str:
            return "" if v is None else fmt.format(v)

        row = [
            for_console(Path(r["path"]).name),  # the whole path is in --json; the table is narrow
            num(r["probability"], "{:.4f}"),
            r["label"],
            str(r.get("frames", "")),
            str(len(r.get("tracks", []))),
            num(c.get("landmark_jitter")),
            num(c.get("flicker")),
            _mark_cell(r),
        ]
        if sync:
            row.append(sync_cell(r.get("sync")))
        table.add_row(*row)
    console.print(table)
    for r in records:
        name = Path(r["path"]).name
        why = without_path(r.get("error") or "", r["path"])
        if r["label"] == "error":
            _say(f"{name}: not scanned: {why}")
        elif r["label"] == "skipped":
            _say(f"{name}: skipped: {why}")
        elif r.get("error"):
            _say(f"{name}: scored the {r['frames']} frames before the damage: {why}")
        s = r.get("sync") or {}
        if "error" in s:
            _say(f"{name}: av-sync: {without_path(s['error'], r['path'])}")
        for what, problem in (r.get("not_written") or {}).items():
            _say(f"{name}: {what} not written: {problem}")
    from deepfake_lab.detect import scan_summary

    sm = scan_summary(records)
    threshold = records[0]["threshold"] if records else 0.5
    line = (
        f"{sm['labels']['fake']} of {sm['total']} videos called fake at threshold {threshold:.3f}"
    )
    if sm["labels"]["no_face"]:
        line += f"; {sm['labels']['no_face']} without a face"
    if sm["labels"]["skipped"]:
        line += f"; {sm['labels']['skipped']} skipped (no file there: see the lines above)"
    if sm["unreadable"]:
        line += f"; {sm['unreadable']} unreadable"
    if sm["no_frame_in_range"]:
        line += f"; {sm['no_frame_in_range']} with no frame in the range"
    if sm["cut_short"]:
        line += f"; {sm['cut_short']} damaged part-way (scored up to the damage)"
    if sm["watermarked"]:
        line += f"; {sm['watermarked']} carry this tool's watermark (generated by deepfake-lab)"
    console.print(line, highlight=False)
    # A video with exactly --frames frames scanned had them spread out (with fewer, every
    # frame was taken, consecutive): that, not a short track, is why jitter is missing.
    spread = [r for r in records if r["label"] != "error" and r.get("frames") == frames]
    if frames is not None and any(
        r.get("tracks") and (r.get("consistency") or {}).get("landmark_jitter") is None
        for r in spread
    ):
        console.print(
            "jitter and flicker need consecutive frames: --frames spreads them out; use "
            "--stride for these",
            highlight=False,
        )


def _say(line: str) -> None:
    """One line about a file, its name and the reason shown as plain text (never markup)."""
    console.print(for_console(line), highlight=False, soft_wrap=True)


def _mark_cell(r: dict) -> str:
    if r.get("watermark") is None:
        return "" if r["label"] in ("error", "skipped") else "-"
    return f"yes ({r['watermark_fingerprint']})" if r["watermark"] else "no"


def _scan_images(
    model,
    paths,
    json_path,
    csv_path,
    batch,
    device,
    faces,
    face_detector,
    face_model,
    explain,
    all_faces=False,
    part=None,
    workers=None,
) -> list[dict]:
    from rich.table import Table

    from deepfake_lab.detect import detect_images, scan_summary

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
        all_faces=all_faces,
        shard=None if part is None else str(part),
        workers=workers,
    )
    _say_how_scanned(records, json_path)
    if not records:
        return records
    table = Table(title=f"{len(records)} images, model {for_console(records[0]['model'])}")
    for col in ("path", "P(fake)", "label", "our watermark"):
        table.add_column(col, justify="right" if col == "P(fake)" else "left")
    for r in records[:50]:
        p = "" if r["probability"] is None else f"{r['probability']:.4f}"
        mark = f"yes ({r['watermark_fingerprint']})" if r["watermark"] else ""
        label = r["label"] + (f" ({r['reason']})" if r.get("reason") else "")
        table.add_row(for_console(r["path"]), p, for_console(label), mark)
    console.print(table)
    if len(records) > 50:
        console.print(f"... {len(records) - 50} more (use --json or --csv for all)")
    for r in records:
        if r["label"] == "skipped":
            _say(f"{r['path']}: skipped: {r['error']}")
        for what, problem in (r.get("not_written") or {}).items():
            _say(f"{r['path']}: {what} not written: {problem}")
    sm = scan_summary(records)
    count = sm["labels"]
    line = (
        f"{count['fake']} of {sm['total']} called fake at threshold {records[0]['threshold']:.3f}"
    )
    if count["uncertain"]:
        line += f"; {count['uncertain']} uncertain (no verdict: see the reason column)"
    if faces:
        line += f"; {count['no_face']} without a face"
    if count["error"]:
        line += f"; {count['error']} unreadable"
    if count["skipped"]:
        line += f"; {count['skipped']} skipped (no file there: see the lines above)"
    if sm["watermarked"]:
        line += f"; {sm['watermarked']} carry this tool's watermark (generated by deepfake-lab)"
    console.print(line)
    if explain is not None:
        console.print(f"Grad-CAM overlays in {for_console(explain)}", highlight=False)
    return records


def _say_how_scanned(records, json_path: Path | None) -> None:
    """The shard, and what a resumed ``.jsonl`` scan took from the file instead of scoring."""
    lines = (
        []
        if records.shard is None
        else [f"shard {records.shard}: {len(records)} of {records.listed} images"]
    )
    out = for_console(json_path)
    if records.torn_bytes:
        lines.append(
            f"{out} ended in a line cut short (a scan stopped mid-write): its "
            f"{records.torn_bytes} bytes were cut off, that file is scored again"
        )
    if records.bad_lines:
        lines.append(f"{out}: {records.bad_lines} damaged line(s) ignored")
    if records.resumed:
        lines.append(
            f"resumed: {records.resumed} of {len(records)} images were already scored in "
            f"{out} (same bytes, same model) and were not scored again"
        )
    for line in lines:
        console.print(line, highlight=False)
