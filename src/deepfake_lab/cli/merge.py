"""``deepfake-lab merge``: join the outputs of a sharded ``detect`` into one."""

from __future__ import annotations

from pathlib import Path

import typer

from deepfake_lab.cli.common import console, handle_errors, json_option
from deepfake_lab.safe_text import for_console

#: This module's top-level command(s); :mod:`deepfake_lab.cli.app` adds them to the root.
commands = typer.Typer()


@commands.command("merge")
@handle_errors
def merge_cmd(
    shards: list[Path] = typer.Argument(
        ..., metavar="SHARD...", help="The --json outputs (.jsonl or .json) of detect --shard."
    ),
    json_path: Path = json_option("Write the merged results here (.jsonl: one record a line)"),
    csv_path: Path = typer.Option(None, "--csv", help="Write the image results as CSV here."),
    report_dir: Path = typer.Option(
        None, "--report", help="Write index.html with the merged tables here."
    ),
    model_id: str = typer.Option(
        None, "--model-id", help="Merge the records of this model_id (when shards hold several)."
    ),
) -> None:
    """Join sharded detect outputs: the records, JSON, CSV and report of one unsharded scan."""
    from deepfake_lab.merge import merge_scans
    from deepfake_lab.scan_output import scan_summary

    res = merge_scans(shards, json_path, csv_path, report_dir, model_id)
    for f in res.shards:
        if f.torn_bytes:
            console.print(
                f"{for_console(f.path)}: left out a last line cut short ({f.torn_bytes} bytes; "
                "rerun that shard's detect to score its file)",
                highlight=False,
            )
        if f.bad_lines:
            console.print(
                f"{for_console(f.path)}: {f.bad_lines} damaged line(s) left out", highlight=False
            )
    sm = scan_summary(res.records)
    line = (
        f"merged {len(res.shards)} shard outputs: {sm['total']} images"
        + (f", {len(res.videos)} videos" if res.videos else "")
        + f", model {for_console(res.model_id)}; {sm['labels']['fake']} called fake"
    )
    for label in ("uncertain", "no_face", "error", "skipped"):
        if sm["labels"][label]:
            line += f", {sm['labels'][label]} {label}"
    if res.duplicates:
        line += f"; {res.duplicates} repeated records dropped"
    if res.replaced:
        line += f"; {res.replaced} files scored twice with other bytes (the last read kept)"
    console.print(line, highlight=False)
    for what, path in (("JSON", json_path), ("CSV", csv_path), ("report", res.report)):
        if path is not None:
            console.print(f"{what}: {for_console(path)}", highlight=False)
