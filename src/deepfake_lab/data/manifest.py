"""The bookkeeping of a prepared dataset folder: manifest, rejections, recovery, lock.

Folder layout::

    OUT/
      images/ab/abcdef0123456789.png   one face crop per kept image, named by its sha256
      images/ab/abcdef0123456789_f000123_t0.png
                                       a video's crop: frame 123 of the stream, face track 0
      manifest.jsonl                   one JSON record per crop (fields: MANIFEST_FIELDS)
      rejected.jsonl                   one JSON record per rejected source (see below)
      summary.json                     counts of the latest run
      montage.png                      up to 64 crops in a grid

Crash safety: each PNG is written atomically (temp file + rename) and its manifest line is
appended only afterwards, so a manifest line always points at a complete file. On start,
:func:`recover` deletes orphan temp files and drops manifest lines whose file is missing
(or torn by a crash mid-line); a PNG without a line is simply written again, under the same
name, by the next run. A video's records are appended together, after all its PNGs, and each
says how many the video has (``video_faces``): :func:`recover` drops the whole set of a video
when any of it is missing, so that the next run does the video again instead of skipping it
as done.

``rejected.jsonl`` is never truncated in place: a run writes its rejections to a temp file
and, when it ends (or is interrupted by an exception), adds the earlier records of sources it
did not look at (beyond ``--limit``, from another source folder, not reached yet) and renames
that file over the old one (:class:`RejectionLog`). A run killed outright leaves the previous
list as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepfake_lab.errors import UserError
from deepfake_lab.io import append_jsonl, atomic_write_text, usual_permissions

MANIFEST = "manifest.jsonl"
REJECTED = "rejected.jsonl"
SUMMARY = "summary.json"
MONTAGE = "montage.png"
IMAGES = "images"
_LOCK = ".prepare.lock"

#: Keys of a manifest record (``None`` where they do not apply, e.g. ``box`` without
#: alignment). Coordinates are source-image (for a video: frame) pixels; ``transform`` is the
#: 2x3 affine from source pixels to output pixels; ``output`` is relative to the dataset
#: folder; ``sha256`` is that of the whole source file (a video's records all share it).
#: :data:`LABEL_FIELDS` and :data:`VIDEO_FIELDS` follow.
MANIFEST_FIELDS = (
    "output", "source", "sha256", "size", "aligned", "split", "detector", "score", "box",
    "landmarks", "landmarks_estimated", "transform", "source_width", "source_height",
    "source_bytes", "source_mtime_ns",
    "label", "method", "compression", "speaker", "youtube_id",
    "video_id", "frame_index", "timestamp", "track_id", "video_faces", "decode_error",
)  # fmt: skip

#: What the source's layout says (``data.video_layouts.SourceLabels``), None in plain
#: folders: ``label`` ``"real"``/``"fake"``; ``method`` the manipulation of a fake
#: (FaceForensics++ ``Deepfakes``, ...; None for reals); ``compression`` FaceForensics++
#: ``c0``/``c23``/``c40``/``raw``; ``speaker`` VoxCeleb ``id10001``; ``youtube_id`` the
#: VoxCeleb YouTube video (its middle folder).
LABEL_FIELDS = ("label", "method", "compression", "speaker", "youtube_id")

#: Per crop of a video, None for images: ``video_id`` the first 16 hex digits of the video
#: file's sha256 (stable when the file is moved or renamed, and the prefix of its crops'
#: names); ``frame_index`` the frame's index in the decoded video stream, from 0;
#: ``timestamp`` its time in seconds from the container start; ``track_id`` the face track
#: (0, 1, ... in order of first appearance within that video; None without alignment, where
#: the crop is the frame's centre); ``video_faces`` how many records the video has;
#: ``decode_error`` why decoding stopped early (``truncated: ...``) when it did, the frames
#: before the break being kept.
VIDEO_FIELDS = (
    "video_id", "frame_index", "timestamp", "track_id", "video_faces", "decode_error",
)  # fmt: skip

# Reasons that depend only on the file's bytes and the options, so a later run with the same
# file and options can reuse them without decoding again. The transient ones
# (``decode.TRANSIENT_REASONS``: ``unreadable``, ``out_of_memory``) are never among them: a
# record with ``"transient": true`` is retried by every run.
CACHEABLE_REASONS = frozenset(
    {"empty_file", "not_image", "not_video", "too_large", "truncated", "corrupt", "no_face",
     "face_too_small", "bad_landmarks"}
)  # fmt: skip


@dataclass(frozen=True)
class Recovery:
    """What :func:`recover` cleaned up: counts of removed temp files and dropped lines."""

    removed_temp_files: int = 0
    dropped_records: int = 0


def output_name(sha256: str) -> str:
    """Output path of a source, relative to the dataset folder; stable across runs."""
    return f"{IMAGES}/{sha256[:2]}/{sha256[:16]}.png"


def video_output_name(sha256: str, frame_index: int, track_id: int | None) -> str:
    """Output path of one face of one video frame, relative to the dataset folder.

    Unique per (video bytes, frame, track) and stable across runs:
    ``images/ab/abcdef0123456789_f000123_t0.png`` (no ``_t`` part for a centre crop).
    """
    track = "" if track_id is None else f"_t{track_id}"
    return f"{IMAGES}/{sha256[:2]}/{sha256[:16]}_f{frame_index:06d}{track}.png"


def stat_key(path: Path) -> tuple[int, int]:
    """``(size in bytes, mtime in ns)``: unchanged means the bytes need not be read again."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def source_unchanged(record: dict[str, Any]) -> bool:
    """Whether a record's source file is still there with the recorded size and mtime."""
    try:
        stat = stat_key(Path(record["source"]))
    except (OSError, KeyError, TypeError, ValueError):
        return False
    return stat == (record.get("source_bytes"), record.get("source_mtime_ns"))


def recover(out: Path) -> tuple[list[dict[str, Any]], Recovery]:
    """Clean up after an interrupted run and return the valid manifest records.

    Deletes ``.*.tmp`` files left by :mod:`deepfake_lab.io` atomic writes, keeps manifest
    records whose output file exists (first record per output), drops every record of a
    video whose set is incomplete (fewer than its ``video_faces``), and rewrites the
    manifest atomically when anything was dropped.
    """
    removed = 0
    for pattern in (".*.tmp", f"{IMAGES}/**/.*.tmp"):
        for tmp in out.glob(pattern):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed += 1

    path = out / MANIFEST
    if not path.exists():
        return [], Recovery(removed, 0)
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    lines = 0
    for record in _read_lines(path):
        lines += 1
        if record is not None:  # None: a torn last line from a crash, or garbage
            sha, output = record.get("sha256"), record.get("output")
            # Keyed by output, not sha256: the crops of one video share its sha256.
            if isinstance(sha, str) and isinstance(output, str) and output not in seen:
                if (out / output).is_file():
                    seen.add(output)
                    records.append(record)
    records = _complete_videos(records)
    dropped = lines - len(records)
    if dropped:
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
    return records, Recovery(removed, dropped)


def check_compatible(records: list[dict[str, Any]], size: int, aligned: bool, out: Path) -> None:
    """Refuse to mix crops of another size or alignment mode into an existing dataset."""
    for record in records[:1]:
        if record.get("size") != size or bool(record.get("aligned")) != aligned:
            mode = "aligned" if record.get("aligned") else "--no-align"
            raise UserError(
                f"{out} already holds {record.get('size')} px {mode} crops; use the same "
                "--size and alignment to add to it, or choose a new output folder"
            )


def append_record(out: Path, record: dict[str, Any]) -> None:
    """Append one manifest record (call only once its output file is in place)."""
    append_jsonl(out / MANIFEST, record)


def append_records(out: Path, records: list[dict[str, Any]]) -> None:
    """Append a video's records in one write (call only once all their files are in place).

    One write and one fsync: a crash tears at most the end of it, and :func:`recover` then
    drops the rest of that video's set.
    """
    if not records:
        return
    with open(out / MANIFEST, "a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r, sort_keys=False) + "\n" for r in records))
        fh.flush()
        os.fsync(fh.fileno())


def _complete_videos(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``records`` less those of videos with fewer records than their ``video_faces``."""
    counts: dict[str, int] = {}
    for r in records:
        if r.get("video_faces") is not None:
            counts[r["sha256"]] = counts.get(r["sha256"], 0) + 1
    return [
        r
        for r in records
        if r.get("video_faces") is None or counts[r["sha256"]] == r.get("video_faces")
    ]


def _read_lines(path: Path) -> Iterator[dict[str, Any] | None]:
    """The JSON objects of a JSONL file, None for each non-blank line that is not one."""
    # errors="replace": a damaged byte spoils its line only, never the whole read.
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            yield record if isinstance(record, dict) else None


def reusable(record: dict[str, Any]) -> bool:
    """Whether a rejection record may settle its unchanged source on a later run: a
    :data:`CACHEABLE_REASONS` reason, not marked ``transient``, and not a failure of the
    machine recorded under another reason by versions that did not tell them apart."""
    if record.get("reason") not in CACHEABLE_REASONS or record.get("transient"):
        return False
    # Before transient failures had their own reason, a MemoryError was recorded as
    # "corrupt" with the exception's name in the detail.
    return "MemoryError" not in str(record.get("detail") or "")


class RejectionLog:
    """``rejected.jsonl`` for one run, swapped in atomically when the run ends.

    The previous file is read once and left untouched while the run goes on; this run's
    records go to a temp file beside it (``.rejected.jsonl.*.tmp``, deleted by :func:`recover`
    after a crash). :meth:`commit` adds the previous records of every source this run did not
    settle, then renames the temp file over ``rejected.jsonl``.

    Attributes:
        cache: ``(source, bytes, mtime_ns, options_key)`` -> previous record, for
            :data:`CACHEABLE_REASONS` only and never a transient failure
            (:func:`reusable`): what a run may reuse without decoding again.
    """

    def __init__(self, out: Path) -> None:
        self.path = out / REJECTED
        self.previous: list[dict[str, Any]] = []
        if self.path.exists():  # records without a source say nothing: dropped
            lines = _read_lines(self.path)
            self.previous = [r for r in lines if r and isinstance(r.get("source"), str)]
        self.cache: dict[tuple[str, int, int, str], dict[str, Any]] = {}
        for r in self.previous:
            try:
                if reusable(r):
                    key = (r["source"], r["source_bytes"], r["source_mtime_ns"], r["options"])
                    self.cache[key] = r
            except (KeyError, TypeError):  # an old or hand-edited record: not reusable
                continue
        self._settled: set[str] = set()
        fd, self._tmp = tempfile.mkstemp(prefix=f".{REJECTED}.", suffix=".tmp", dir=out)
        self._fh = os.fdopen(fd, "w", encoding="utf-8")
        try:
            usual_permissions(self._tmp)
        except OSError:
            self.discard()
            raise

    def add(self, record: dict[str, Any]) -> None:
        """Record a rejection of this run (its ``source`` counts as settled)."""
        self._fh.write(json.dumps(record, sort_keys=False) + "\n")
        self.settle(record["source"])

    def settle(self, source: str) -> None:
        """Mark ``source`` as dealt with by this run: its previous record, if any, is dropped."""
        self._settled.add(source)

    def commit(self) -> None:
        """Write the previous records of unsettled sources, then rename the file into place."""
        try:
            for record in self.previous:
                if record.get("source") not in self._settled:
                    self._fh.write(json.dumps(record, sort_keys=False) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Drop this run's list, leaving the previous ``rejected.jsonl`` as it was."""
        self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


@contextlib.contextmanager
def rejection_log(out: Path) -> Iterator[RejectionLog]:
    """A :class:`RejectionLog` committed when the block ends, also when it raises.

    On an exception the records written so far are kept, and the previous records of the
    sources not reached yet are carried over; if even that fails the old file stays.
    """
    log = RejectionLog(out)
    try:
        yield log
    except BaseException:
        with contextlib.suppress(Exception):  # report the original error, not this one
            log.commit()
        raise
    log.commit()


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold ``OUT/.prepare.lock`` so that two runs never write the same folder at once.

    A lock left by a process that no longer exists (a killed run) is taken over.

    Raises:
        UserError: another live process holds the lock.
    """
    path = out / _LOCK
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = _read_pid(path)
            if pid is not None and pid != os.getpid() and _alive(pid):
                raise UserError(
                    f"another run (pid {pid}) is writing {out}; wait for it, or delete "
                    f"{path} if that process is not a deepfake-lab run"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        break
    else:
        raise UserError(f"cannot take the lock {path}; delete it if no run is active")
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
