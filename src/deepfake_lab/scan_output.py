"""Where image scan records go: ``--json`` (a document, or JSON Lines streamed as files are
scored), ``--csv``; the counts behind the summary line; and resuming a stopped scan.

A ``.jsonl`` output holds one JSON object a line: a header ``{"scan": {...}}`` (the
detector's identity, ``model_id``, calibration, face settings) whenever a run with other
settings starts appending, then one record per file, flushed as soon as the file is scored.
A crash, Ctrl-C or ``kill -9`` loses at most the files in flight; the torn line a crash may
leave at the end is cut off by the next run before it appends.

A rerun with the same ``.jsonl`` skips each file already scored, keyed by the sha256 of its
bytes and the ``model_id`` (:func:`scan_model_id`: the weights, their calibration and input
handling, and the face settings), so a file whose bytes changed, or a scan with another
model, is scored again; a file with the same bytes as one scored under another name gets a
copy of that record under its own name. Records of files that could not be read (nothing to
key on) or failed for a passing reason (``data.decode.TRANSIENT_REASONS``) are tried again.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from deepfake_lab.data.decode import TRANSIENT_REASONS
from deepfake_lab.errors import UserError
from deepfake_lab.hashing import sha256_file
from deepfake_lab.io import atomic_write_json, atomic_write_text
from deepfake_lab.safe_text import for_record, for_records

if TYPE_CHECKING:
    from deepfake_lab.faces.detectors import FaceDetector
    from deepfake_lab.models.detectors.loading import LoadedDetector

#: Labels of scan records ("skipped": an entry that holds no file, such as a named pipe or a
#: link that loops; its ``error`` says which).
LABELS = ("fake", "real", "uncertain", "no_face", "error", "skipped")
#: Records between two fsyncs of a ``.jsonl`` (each line is flushed to the OS at once, which
#: a killed process cannot lose; the fsync bounds what a power cut can).
SYNC_EVERY = 1000


class ScanRecords(list):
    """The records of an image scan (a list), with what the scan did besides scoring.

    Attributes:
        listed: image entries found before sharding.
        shard: ``"I/N"`` when only one shard was scanned, else None.
        resumed: files whose record came from the ``.jsonl`` output, not from scoring.
        torn_bytes: bytes of a torn last line cut from the ``.jsonl`` before appending.
        bad_lines: complete lines of the ``.jsonl`` that were not JSON (ignored).
    """

    listed: int = 0
    shard: str | None = None
    resumed: int = 0
    torn_bytes: int = 0
    bad_lines: int = 0


def scan_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts over scan records (images or videos), for the summary line and reports.

    Returns:
        ``total``; ``labels``: records per label of :data:`LABELS`; ``watermarked``: records
        that carry this tool's watermark; for videos, ``no_frame_in_range`` (errors because
        the asked time range held no frame; the rest of ``labels["error"]`` is unreadable)
        and ``cut_short`` (scored, but only up to damage in the file).
    """
    labels = {k: sum(r.get("label") == k for r in records) for k in LABELS}
    empty = sum(
        r.get("label") == "error" and "no frame between" in str(r.get("error") or "")
        for r in records
    )
    return {
        "total": len(records),
        "labels": labels,
        "unreadable": labels["error"] - empty,
        "no_frame_in_range": empty,
        "cut_short": sum(
            r.get("label") not in ("error", "skipped") and bool(r.get("error")) for r in records
        ),
        "watermarked": sum(bool(r.get("watermark")) for r in records),
    }


def scan_model_id(
    det: LoadedDetector,
    faces: bool = False,
    face_detector: str = "yunet",
    finder: FaceDetector | None = None,
    all_faces: bool = False,
) -> str:
    """``det.model_id@`` 12 hex digits of a sha256 over everything that makes its answers:
    the full weights fingerprint, temperature, threshold, re-encoding, native floor, the
    fast path, the test-time view, and with ``faces`` the face detector, its model file's
    sha256 and ``all_faces``. Two scans agree on it exactly when they score alike, wherever the
    detector was loaded from (run folder, checkpoint or export)."""
    face_file = getattr(finder, "model_path", None)
    settings = {
        "weights_sha256": det.identity.get("weights_sha256"),
        "temperature": det.temperature,
        "logit_threshold": det.logit_threshold,
        "reencode": det.reencode,
        "native_floor": det.native_floor,
        "fast": det.fast,
        # Only when set, so that scans from before test-time views keep their ids.
        **({"tta": det.tta} if det.tta != "none" else {}),
        "faces": None
        if not faces
        else {
            "detector": face_detector,
            "model_sha256": sha256_file(face_file) if face_file else None,
            "all_faces": all_faces,
        },
    }
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return f"{det.model_id}@{hashlib.sha256(blob).hexdigest()[:12]}"


def scan_header(
    det: LoadedDetector,
    model_id: str,
    faces: bool,
    face_detector: str,
    finder: FaceDetector | None,
    explain: Path | None,
) -> dict[str, Any]:
    """What the ``--json`` document says about the scan besides its records."""
    face_info = None
    if faces:
        face_model = getattr(finder, "model_path", None)
        face_info = {"detector": face_detector, "model": face_model and str(face_model)}
    return {
        "model": det.identity,
        "model_id": model_id,
        "calibrated": det.calibrated,
        "faces": face_info,
        "explain_dir": None if explain is None else str(explain),
    }


def is_jsonl(path: str | Path | None) -> bool:
    """Whether an output path asks for JSON Lines (``.jsonl``)."""
    return path is not None and Path(path).suffix.lower() == ".jsonl"


def write_scan_outputs(
    records: list[dict[str, Any]],
    header: dict[str, Any],
    json_path: str | Path | None,
    csv_path: str | Path | None,
    stopped: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """The records to ``json_path`` (a document; ``.jsonl``: the header line, then one
    record a line) and ``csv_path``, each written atomically; ``stopped`` (why the scan
    ended early) goes into the document as ``interrupted``, ``extra`` keys after
    ``results``. File names as ``safe_text.for_record`` writes them."""
    counts = {label: sum(r["label"] == label for r in records) for label in LABELS}
    if json_path and is_jsonl(json_path):
        lines = [{"scan": header}, *records]
        atomic_write_text(Path(json_path), "".join(_line(r) for r in lines))
    elif json_path:
        doc = {**header, "counts": counts, "results": records, **(extra or {})}
        if stopped is not None:
            doc["interrupted"] = stopped
        atomic_write_json(Path(json_path), for_records(doc))
    if csv_path:
        fields = ["path", "probability", "label", "threshold", "model", "watermark"]
        fields += ["watermark_fingerprint", "error"]
        fields += ["face_box", "face_score"] if any("face_box" in r for r in records) else []
        fields += ["explain"] if any("explain" in r for r in records) else []
        fields += ["reason", "ood"] if any("reason" in r for r in records) else []
        fields += ["sha256", "model_id"]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fields, extrasaction="ignore")  # "members" is JSON-only
        w.writeheader()
        for r in records:
            row = dict(r)
            if row.get("face_box") is not None:
                row["face_box"] = " ".join(f"{v:g}" for v in row["face_box"])
            w.writerow(for_records(row))
        atomic_write_text(Path(csv_path), buf.getvalue())


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(for_records(obj)) + "\n"


@dataclass
class ScanFile:
    """One ``detect --json`` output as read back: its headers (one per run that wrote it),
    image records, video records, and what was damaged (a torn last line's bytes, lines
    that are not JSON)."""

    path: Path
    headers: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    videos: list[dict[str, Any]] = field(default_factory=list)
    torn_bytes: int = 0
    bad_lines: int = 0


def read_scan_file(path: str | Path) -> ScanFile:
    """Read a ``detect --json`` output: a ``.jsonl`` (a torn last line is left out and
    counted) or a JSON document (``results``, and ``videos`` when it has them).

    Raises:
        UserError: missing, unreadable, or not a scan output.
    """
    path = Path(path)
    out = ScanFile(path)
    try:
        if is_jsonl(path):
            with open(path, "rb") as fh:
                _read_jsonl(fh, out)
            return out
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} as a detect --json output ({exc})") from None
    ours = isinstance(doc, dict) and ("results" in doc or "videos" in doc)
    results = doc.get("results", []) if ours else None
    if not isinstance(results, list):
        raise UserError(f"{path} is not a detect --json output (no results in it)")
    out.headers = [{k: v for k, v in doc.items() if k not in ("counts", "results", "videos")}]
    out.records, out.videos = results, list(doc.get("videos") or [])
    return out


def _read_jsonl(fh: IO[bytes], out: ScanFile) -> int:
    """Add the headers and records of a ``.jsonl`` read from its start to ``out``, and
    count its damage; returns the offset where its last complete line ends."""
    start = 0  # where the line being read begins
    for raw in fh:
        if not raw.endswith(b"\n"):  # the last line, cut short by a crash
            out.torn_bytes = len(raw)
            break
        start += len(raw)
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            out.bad_lines += 1
        elif isinstance(obj.get("scan"), dict):
            out.headers.append(obj["scan"])
        elif "path" in obj:
            out.records.append(obj)
    return start


def _reusable(record: dict[str, Any]) -> bool:
    """Whether a stored record stands for its bytes: not an entry without a file, and not a
    failure that may pass (the file could not be read, memory ran out)."""
    if not record.get("sha256") or record.get("label") == "skipped":
        return False
    reason = str(record.get("error") or "").split(":", 1)[0]
    return record.get("label") != "error" or reason not in TRANSIENT_REASONS


class JsonlStream:
    """A ``.jsonl`` scan output opened for resuming and appending (a context manager).

    On entry: takes an exclusive lock on the file (a second scan writing the same file is
    refused), reads what is there, cuts off a torn last line, and appends ``header`` unless
    the last header in the file is the same. :meth:`reuse` then answers, from any thread,
    whether a file was already scored; :meth:`write` appends a record and flushes it.
    """

    def __init__(self, path: str | Path, model_id: str, header: dict[str, Any]) -> None:
        self.path = Path(path)
        self.model_id = model_id
        self.header = json.loads(_line(header))  # as it reads back
        self.resumed = 0
        self.torn_bytes = 0
        self.bad_lines = 0
        self._latest: dict[str, dict[str, Any]] = {}  # path -> its last record, this model
        self._by_sha: dict[str, dict[str, Any]] = {}  # sha256 -> a reusable record
        self._lock = threading.Lock()
        self._fh: IO[bytes] | None = None
        self._unsynced = 0

    def __enter__(self) -> JsonlStream:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+b")  # noqa: SIM115 - held open until __exit__
        try:
            _lock_file(fh, self.path)
            fh.seek(0)
            found = ScanFile(self.path)
            end = _read_jsonl(fh, found)
            if found.torn_bytes:
                fh.truncate(end)
            self.torn_bytes, self.bad_lines = found.torn_bytes, found.bad_lines
            for obj in found.records:
                if obj.get("model_id") == self.model_id:
                    self._latest[str(obj["path"])] = obj
                    if _reusable(obj):
                        self._by_sha[obj["sha256"]] = obj
            last_header = found.headers[-1] if found.headers else None
            if last_header != self.header:
                fh.write(_line({"scan": self.header}).encode())
                fh.flush()
        except BaseException:
            fh.close()
            raise
        self._fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):  # the records are flushed; this only syncs
                os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def reuse(self, path: str | Path, sha256: str) -> dict[str, Any] | None:
        """The stored record for ``path`` when it was scored with these bytes and this
        model, or a copy under ``path`` of a record of the same bytes under another name;
        None: score it."""
        name = os.fspath(path)
        old = self._latest.get(for_record(name))
        if old is None or old.get("sha256") != sha256 or not _reusable(old):
            old = self._by_sha.get(sha256)
        if old is None:
            return None
        with self._lock:
            self.resumed += 1
        return {**old, "path": name}

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line, flushed, unless the file's last line for its path
        is this very record (a resumed file, or an entry without a file seen again)."""
        assert self._fh is not None, "write() outside the with block"
        line = _line(record)
        old = self._latest.get(for_record(record["path"]))
        if old is not None and old == json.loads(line):
            return
        self._fh.write(line.encode())
        self._fh.flush()
        self._unsynced += 1
        if self._unsynced >= SYNC_EVERY:
            os.fsync(self._fh.fileno())
            self._unsynced = 0


def _lock_file(fh: IO[bytes], path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; one writer is the user's to keep
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UserError(
            f"{path} is being written by another scan; give each process its own --json "
            "(under torchrun or with --shard, put {shard} in the name)"
        ) from None
