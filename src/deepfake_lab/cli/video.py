"""``deepfake-lab av-sync``: audio-visual offset of a talking-face video."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import typer

from deepfake_lab.cli.common import (
    console,
    face_detector_option,
    face_model_option,
    handle_errors,
    json_option,
    no_progress_option,
    old_face_detector_option,
    pick_face_detector,
    stage_progress,
)
from deepfake_lab.safe_text import for_console, for_records

#: This module's top-level command(s); :mod:`deepfake_lab.cli.app` adds them to the root.
commands = typer.Typer()


@commands.command("av-sync")
@handle_errors
def av_sync_cmd(
    video: Path = typer.Argument(..., help="A video with a face and an audio track."),
    json_path: Path = json_option("Write the estimate as JSON here"),
    max_lag_ms: float = typer.Option(600.0, "--max-lag-ms", help="Offsets tried, both ways."),
    face_detector: str = face_detector_option(),
    old_detector: str | None = old_face_detector_option(),
    face_model: Path = face_model_option(),
    lips: str = typer.Option(
        "auto",
        "--lips",
        help="Add the 68-point outer-lip opening: auto (when dlib is installed) | on | off.",
    ),
    lip_model: Path = typer.Option(
        None, "--lip-model", help="dlib 68-point predictor (default: the 'lips' extra's)."
    ),
    plot: Path = typer.Option(
        None, "--plot", help="Write a PNG of the signals and the correlation per lag here."
    ),
    window: float = typer.Option(
        None, "--window", help="Also read the offset in sliding windows of this many seconds."
    ),
    hop: float = typer.Option(None, "--hop", help="Seconds between windows (default: half)."),
    start: float = typer.Option(None, "--start", help="Read from this time (seconds)."),
    end: float = typer.Option(None, "--end", help="Read up to this time (seconds)."),
    no_progress: bool = no_progress_option(),
) -> None:
    """Offset between lips and speech (positive: the audio lags), with confidence."""
    from deepfake_lab.data.decode import not_a_file
    from deepfake_lab.errors import UserError
    from deepfake_lab.faces.detectors import build_face_detector
    from deepfake_lab.io import atomic_write_json, check_output_paths
    from deepfake_lab.video.avsync import av_sync
    from deepfake_lab.video.decode import check_range, probe
    from deepfake_lab.video.lips import lip_tracker

    if video.is_dir():
        raise UserError(f"{video} is a folder; give one video file")
    if not os.path.lexists(video):
        raise UserError(f"not found: {video}")
    why = not_a_file(video)
    if why is not None:  # a named pipe, a link that loops or leads nowhere: say which
        raise UserError(f"{video} is {why}; give a video file")
    check_output_paths({"--json": json_path, "--plot": plot})
    probe(video)  # a bad video fails here, before the face model is looked for
    check_range(start, end, ("--start", "--end"))
    tracker = lip_tracker(lips, lip_model)
    if (window is not None and window <= 0) or (hop is not None and hop <= 0):
        raise UserError("--window and --hop must be positive (seconds)")
    if hop is not None and window is None:
        raise UserError("--hop needs --window")
    finder = build_face_detector(pick_face_detector(face_detector, old_detector), face_model)
    with stage_progress({"frames": "finding the mouth"}, disable=no_progress) as report:
        r = av_sync(
            video,
            finder,
            max_lag_ms,
            start,
            end,
            lips=tracker,
            window_s=window,
            hop_s=hop,
            progress=functools.partial(report, "frames"),
        )
    if json_path:
        atomic_write_json(json_path, for_records(r))
    if plot:
        from deepfake_lab.report.video_plots import plot_sync

        plot_sync(r, plot)
    console.print(
        for_console(
            f"{video}: offset {r['offset_ms']:+.0f} ms (+-{r['offset_uncertainty_ms']:.0f} ms; "
            f"positive = audio lags), confidence {r['confidence']:.2f}, chance p "
            f"{r['chance_p']:.2f}, {r['track_frames']}/{r['frames']} frames with the face; "
            f"mouth signals: {', '.join(r['mouth_signals'])}"
        ),
        highlight=False,
    )
    if r.get("decode_error"):
        console.print(
            f"  read up to the damage: {for_console(r['decode_error'])}",
            highlight=False,
            soft_wrap=True,
        )
    if r["chance_p"] > 0.05:
        console.print(
            f"  the peak is not above chance (p {r['chance_p']:.2f} > 0.05: unrelated audio "
            "with this spectrum often correlates as well): no evidence the audio belongs to "
            "this mouth, and the offset is a weak reading; a longer clip helps",
            highlight=False,
        )
    if "windows" in r:
        _window_table(r["windows"])
    if plot:
        console.print(f"plot: {for_console(plot)}", highlight=False)


def _window_table(windows: list[dict]) -> None:
    from rich.table import Table

    table = Table(title=f"{len(windows)} windows")
    for col in ("from s", "to s", "offset ms", "+-ms", "confidence", "chance p", "face"):
        table.add_column(col, justify="right")
    for w in windows:
        if "skipped" in w:
            cells = ["", "", "", "", f"{w['face_coverage']:.0%}"]
            cells[0] = "skipped"
        else:
            cells = [
                f"{w['offset_ms']:+.0f}",
                f"{w['offset_uncertainty_ms']:.0f}",
                f"{w['confidence']:.2f}",
                f"{w['chance_p']:.2f}",
                f"{w['face_coverage']:.0%}",
            ]
        table.add_row(f"{w['start_s']:.1f}", f"{w['end_s']:.1f}", *cells)
    console.print(table)
    read = [w for w in windows if "offset_ms" in w]
    strong = [w["offset_ms"] for w in read if w["chance_p"] <= 0.05]
    line = f"{len(read)} of {len(windows)} windows read, {len(strong)} above chance (p <= 0.05)"
    if strong:
        line += f"; their offsets {min(strong):+.0f} to {max(strong):+.0f} ms"
    console.print(line, highlight=False)
