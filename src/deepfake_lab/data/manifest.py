"""The bookkeeping of a prepared dataset folder: manifest, rejections, recovery, lock.

Folder layout::

    OUT/
      images/ab/abcdef0123456789.png   one face crop per kept source, named by source sha256
      manifest.jsonl                   one JSON record per kept image (fields: MANIFEST_FIELDS)
      rejected.jsonl                   one JSON record per rejected source of the latest run
      summary.json                     counts of the latest run
      montage.png                      up to 64 crops in a grid

Crash safety: each PNG is written atomically (temp file + rename) and its manifest line is
appended only afterwards, so a manifest line always points at a complete file. On start,
:func:`recover` deletes orphan temp files and drops manifest lines whose file is missing
(or torn by a crash mid-line); a PNG without a line is simply written again, under the same
name, by the next run.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepfake_lab.errors import UserError
from deepfake_lab.io import append_jsonl, atomic_write_text

MANIFEST = "manifest.jsonl"
REJECTED = "rejected.jsonl"
SUMMARY = "summary.json"
MONTAGE = "montage.png"
IMAGES = "images"
_LOCK = ".prepare.lock"

#: Keys of a manifest record (``None`` where they do not apply, e.g. ``box`` without
#: alignment). Coordinates are source-image pixels; ``transform`` is the 2x3 affine from
#: source pixels to output pixels; ``output`` is relative to the dataset folder.
MANIFEST_FIELDS = (
    "output", "source", "sha256", "size", "aligned", "split", "detector", "score", "box",
    "landmarks", "landmarks_estimated", "transform", "source_width", "source_height",
    "source_bytes", "source_mtime_ns",
)  # fmt: skip

# Reasons that depend only on the file's bytes and the options, so a later run with the same
# file and options can reuse them without decoding again.
CACHEABLE_REASONS = frozenset(
    {"empty_file", "not_image", "too_large", "truncated", "corrupt", "no_face",
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


def stat_key(path: Path) -> tuple[int, int]:
    """``(size in bytes, mtime in ns)``: unchanged means the bytes need not be read again."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def recover(out: Path) -> tuple[list[dict[str, Any]], Recovery]:
    """Clean up after an interrupted run and return the valid manifest records.

    Deletes ``.*.tmp`` files left by :mod:`deepfake_lab.io` atomic writes, keeps manifest
    records whose output file exists (first record per sha256), and rewrites the manifest
    atomically when anything was dropped.
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
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            lines += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # torn last line from a crash
            sha, output = record.get("sha256"), record.get("output")
            if not isinstance(sha, str) or not isinstance(output, str) or sha in seen:
                continue
            if not (out / output).is_file():
                continue
            seen.add(sha)
            records.append(record)
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


def append_rejection(out: Path, record: dict[str, Any]) -> None:
    """Append one record to ``rejected.jsonl``."""
    append_jsonl(out / REJECTED, record)


def take_rejection_cache(out: Path) -> dict[tuple[str, int, int, str], dict[str, Any]]:
    """Read the previous run's rejections and start a fresh ``rejected.jsonl``.

    Returns:
        ``(source, bytes, mtime_ns, options_key)`` -> record, for cacheable reasons only.
    """
    path = out / REJECTED
    cache: dict[tuple[str, int, int, str], dict[str, Any]] = {}
    if not path.exists():
        return cache
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                r = json.loads(line)
                if r["reason"] in CACHEABLE_REASONS:
                    key = (r["source"], r["source_bytes"], r["source_mtime_ns"], r["options"])
                    cache[key] = r
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    path.unlink()
    return cache


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
