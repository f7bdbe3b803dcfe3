"""``deepfake-lab merge``: join the outputs of a sharded ``detect`` into the one an
unsharded scan writes: the same records, the same order, the same JSON, CSV and report.

Each shard output is a ``.jsonl`` (a torn last line, left by a scan that was killed, is left
out) or a ``.json`` document (its ``videos`` too). Every record must come from one model
(``model_id``: the weights, calibration and scan settings, so shards scored alike agree on
it wherever the model was loaded from); a file that holds scores of several, such as a
``.jsonl`` resumed with another model, is merged for one of them with ``model_id``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepfake_lab.errors import UserError
from deepfake_lab.io import check_output_paths
from deepfake_lab.scan_output import ScanFile, read_scan_file, write_scan_outputs


@dataclass
class MergeResult:
    """What :func:`merge_scans` joined.

    Attributes:
        records: image records, one per path, sorted by path (as ``detect_images`` returns).
        videos: video records, likewise.
        model_id: the model every record was scored with.
        shards: the files read, each with its ``torn_bytes`` and ``bad_lines``.
        duplicates: records that repeated one already read (the same path, same bytes).
        replaced: records of a path whose bytes differ from an earlier record's (the file
            changed between two scans): the one read last is kept.
        report: the HTML page written, or None.
    """

    records: list[dict[str, Any]]
    videos: list[dict[str, Any]]
    model_id: str | None
    shards: list[ScanFile] = field(default_factory=list)
    duplicates: int = 0
    replaced: int = 0
    report: Path | None = None


def merge_scans(
    shards: list[str | Path],
    json_path: str | Path | None = None,
    csv_path: str | Path | None = None,
    report_dir: str | Path | None = None,
    model_id: str | None = None,
) -> MergeResult:
    """Join ``detect --json`` outputs of shards into one scan's outputs.

    Args:
        shards: ``.jsonl`` or ``.json`` outputs of ``detect`` (any number, any order).
        json_path: write the merged document here (``.jsonl``: a header line, then one
            record a line), as ``detect --json`` writes it.
        csv_path: the image records as ``detect --csv`` writes them.
        report_dir: ``index.html`` as ``detect --report`` writes it.
        model_id: keep only the records of this model (when the shards hold several).

    Returns:
        The merged records and what was left out (:class:`MergeResult`).

    Raises:
        UserError: no shard, a shard that cannot be read, records of more than one model
            (without ``model_id``), no record of ``model_id``, or an output that cannot be
            written (checked before anything is read).
    """
    if not shards:
        raise UserError("give the shard outputs to merge (the .jsonl or .json of each detect)")
    if json_path is None and csv_path is None and report_dir is None:
        raise UserError("nothing to write: give --json, --csv or --report")
    check_output_paths({"--json": json_path, "--csv": csv_path}, {"--report": report_dir})
    files = [read_scan_file(s) for s in shards]
    images = [r for f in files for r in f.records]
    videos = [r for f in files for r in f.videos]
    model_id = _one_model(images, videos, files, model_id)
    images = [r for r in images if _model_of(r) == model_id]
    # Videos carry the weights' id (``model``), which the images' model_id starts with.
    videos = [v for v in videos if model_id is None or _same_weights(v, model_id)]
    out = MergeResult([], [], model_id, files)
    out.records = _unique(images, out)
    out.videos = _unique(videos, out)
    header = _header(files, model_id)
    extra = {"videos": out.videos} if out.videos else None
    write_scan_outputs(out.records, header, json_path, csv_path, extra=extra)
    if report_dir is not None:
        from deepfake_lab.report.detect_report import write_detect_report

        first = (out.records or out.videos or [{}])[0]
        out.report = write_detect_report(
            report_dir,
            str(first.get("model") or model_id),
            float(first.get("threshold") or 0.5),
            out.records,
            out.videos,
        )
    return out


def _model_of(record: dict[str, Any]) -> str | None:
    # Outputs written before records had a model_id name the weights only.
    return record.get("model_id") or record.get("model")


def _same_weights(video: dict[str, Any], model_id: str) -> bool:
    weights = str(video.get("model"))
    return model_id == weights or model_id.startswith(f"{weights}@")


def _one_model(
    images: list[dict[str, Any]],
    videos: list[dict[str, Any]],
    files: list[ScanFile],
    wanted: str | None,
) -> str | None:
    """The model id to merge: the only one there, or ``wanted``."""
    counts = Counter(_model_of(r) for r in images)
    if wanted is not None:
        if wanted not in counts:
            have = ", ".join(f"{m} ({n})" for m, n in counts.most_common()) or "none"
            raise UserError(f"no record of model {wanted} in the shards; they hold: {have}")
        return wanted
    if len(counts) > 1:
        where = {
            m: sorted({str(f.path) for f in files for r in f.records if _model_of(r) == m})
            for m in counts
        }
        have = "; ".join(
            f"{m}: {n} records in {', '.join(where[m])}" for m, n in counts.most_common()
        )
        raise UserError(
            f"the shards were scored with {len(counts)} different models ({have}); merge "
            "shards of one scan, or pick one with --model-id"
        )
    if counts:
        return next(iter(counts))
    weights = {v.get("model") for v in videos}
    if len(weights) > 1:
        raise UserError(f"the shards' videos were scored with different models: {weights}")
    return None


def _unique(records: list[dict[str, Any]], out: MergeResult) -> list[dict[str, Any]]:
    """One record per path (the last read), sorted by path; counts what was dropped."""
    by_path: dict[str, dict[str, Any]] = {}
    for r in records:
        old = by_path.get(r["path"])
        if old is not None:
            same = old == r or old.get("sha256") == r.get("sha256")
            out.duplicates += same
            out.replaced += not same
        by_path[r["path"]] = r
    return sorted(by_path.values(), key=lambda r: r["path"])


def _header(files: list[ScanFile], model_id: str | None) -> dict[str, Any]:
    """The scan header of ``model_id`` (the last one read), as ``detect --json`` has it."""
    header: dict[str, Any] = {"model": None, "model_id": model_id, "calibrated": None}
    header |= {"faces": None, "explain_dir": None}
    for f in files:
        for h in f.headers:
            if h.get("model_id", model_id) == model_id:
                header |= {k: h[k] for k in header if k in h}
    return header
