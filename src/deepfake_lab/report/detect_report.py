"""``detect --report DIR``: one self-contained ``index.html`` of a scan, with the videos'
timelines and sync plots beside their numbers.

The pictures are written into ``DIR`` by the scan itself (``detect_videos`` with
``timeline_dir``/``sync_plot_dir`` set to it); this module only lays out the page.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

from deepfake_lab import __version__
from deepfake_lab.report.html import ReportImage, Section, Table, write_report

#: Image rows shown in the report (all of them are in --json).
MAX_IMAGE_ROWS = 500


def _num(v: float | None, digits: int = 3) -> float | str:
    """A number rounded for the table (a float, so that it is right-aligned), or ""."""
    return "" if v is None else round(float(v), digits)


def sync_cell(sync: dict[str, Any] | None) -> str:
    """The av-sync column of a video: offset (confidence, chance p), or why there is none
    ("" when it was not asked for)."""
    if sync is None:
        return ""
    if "skipped" in sync:
        return "no audio"
    if "error" in sync:
        return "unreadable"
    return f"{sync['offset_ms']:+.0f} ms ({sync['confidence']:.2f}, p {sync['chance_p']:.2f})"


def _rel(path: str | None, root: Path) -> str | None:
    """``path`` relative to the report folder (``../`` when it lies beside it: the two
    folders then move together), or None."""
    if path is None:
        return None
    try:
        return Path(os.path.relpath(Path(path).resolve(), root.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return None


def _video_section(videos: list[dict[str, Any]], root: Path) -> Section:
    rows = []
    for r in videos:
        c = r.get("consistency") or {}
        mark = f"yes ({r['watermark_fingerprint']})" if r.get("watermark") else ""
        rows.append(
            [
                Path(r["path"]).name,
                _num(r.get("probability"), 4),
                r["label"],
                r.get("frames", ""),
                len(r.get("tracks", [])),
                _num(c.get("landmark_jitter")),
                _num(c.get("flicker")),
                mark,
            ]
        )
    header = ["video", "P(fake)", "label", "frames", "tracks", "jitter (IOD)", "flicker"]
    header += ["our watermark"]
    if any(r.get("sync") is not None for r in videos):  # --sync was given
        header.append("av-sync")
        for row, r in zip(rows, videos, strict=True):
            row.append(sync_cell(r.get("sync")))
    images = []
    for r in videos:
        name = Path(r["path"]).name
        rel = _rel(r.get("timeline"), root)
        if rel:
            images.append(ReportImage(rel, f"{name}: P(fake) over time per face track"))
        rel = _rel((r.get("sync") or {}).get("plot"), root)
        if rel:
            images.append(ReportImage(rel, f"{name}: mouth and speech, correlation per lag"))
    errors = [f"{Path(r['path']).name}: {r['error']}" for r in videos if r.get("error")]
    note = (
        "P(fake) is the detector's calibrated probability aggregated over the faces of the "
        "sampled frames; jitter and flicker are the longest face track's (consecutive frames "
        "only)."
    )
    if "av-sync" in header:
        note += (
            " av-sync: offset (positive: the audio lags), confidence, and chance p (above "
            "0.05 the peak does not beat unrelated audio)."
        )
    notes = [note]
    return Section("Videos", paragraphs=notes + errors, tables=[Table(header, rows)], images=images)


def _image_section(images: list[dict[str, Any]]) -> Section:
    rows = [
        [
            r["path"],
            _num(r.get("probability"), 4),
            r["label"],
            f"yes ({r['watermark_fingerprint']})" if r.get("watermark") else "",
        ]
        for r in images[:MAX_IMAGE_ROWS]
    ]
    fake = sum(r["label"] == "fake" for r in images)
    paras = [f"{fake} of {len(images)} called fake."]
    if len(images) > MAX_IMAGE_ROWS:
        paras.append(f"The first {MAX_IMAGE_ROWS} rows; --json has all {len(images)}.")
    header = ["image", "P(fake)", "label", "our watermark"]
    return Section("Images", paragraphs=paras, tables=[Table(header, rows)])


def write_detect_report(
    out_dir: str | Path,
    model: str,
    threshold: float,
    images: list[dict[str, Any]] | None = None,
    videos: list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``out_dir/index.html`` for one ``detect`` run.

    Args:
        out_dir: the report folder (the videos' timelines and sync plots are already in it).
        model: the detector's id (``name:weights-sha256-prefix``, as in the records).
        threshold: its decision threshold on P(fake).
        images: ``detect_images`` records.
        videos: ``detect_videos`` records.

    Returns:
        The HTML file's path.
    """
    root = Path(out_dir)
    sections = [Section("Detector", paragraphs=[f"{model}, threshold on P(fake) {threshold:.4f}."])]
    if videos:
        sections.append(_video_section(videos, root))
    if images:
        sections.append(_image_section(images))
    stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    footer = f"deepfake-lab {__version__}, {stamp}"
    return write_report(root / "index.html", "deepfake-lab detect", sections, footer)
