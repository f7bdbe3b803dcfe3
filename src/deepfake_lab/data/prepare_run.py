"""Bookkeeping of one ``data prepare`` run: which sources are done, rejected before or seen
twice, and the rejection records. Used by the image and the video path alike."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepfake_lab.data import manifest as mf
from deepfake_lab.data.decode import TRANSIENT_REASONS, DecodeError, read_image_file
from deepfake_lab.data.layouts import SourceImage, SourceVideo
from deepfake_lab.data.prepare_summary import PrepareSummary
from deepfake_lab.errors import os_error_detail


class Reject(Exception):
    """A source that is not kept: a reason code, a detail and extra record fields."""

    def __init__(self, reason: str, detail: str, **extra: Any) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.extra = reason, detail, extra


def out_of_memory_reject(what: str) -> Reject:
    """The rejection of a source whose processing raised MemoryError: transient, so the next
    run tries it again instead of taking it for a bad file."""
    return Reject("out_of_memory", f"ran out of memory while {what} it; the next run tries again")


@dataclass
class ImageSource:
    """A source that needs processing: its bytes, their sha256, its ``stat_key``."""

    data: bytes
    sha: str
    stat: tuple[int, int]


class PrepareRun:
    """Per-run bookkeeping of ``data prepare``: what is done, what was rejected before, what
    was seen; shared by the image path (:func:`deepfake_lab.data.prepare.settle_image`) and
    the video path (:func:`deepfake_lab.data.prepare_video.settle_video`)."""

    def __init__(
        self,
        out: Path,
        options: str,
        records: list[dict[str, Any]],
        rejections: mf.RejectionLog,
        summary: PrepareSummary,
        max_pixels: int,
    ) -> None:
        self.out, self.options, self.summary = out, options, summary
        self.records = records
        self.max_pixels = max_pixels
        self.rejections = rejections
        self.done_by_sha = {r["sha256"]: r for r in records}
        self.done_by_stat = {
            (r.get("source"), r.get("source_bytes"), r.get("source_mtime_ns")): r for r in records
        }
        self.first_seen: dict[str, str] = {}  # sha256 -> first new source path in this run
        self.reasons: Counter[str] = Counter()

    def classify(self, image: SourceImage) -> ImageSource | None:
        """Read ``image`` unless it is done, rejected again or a duplicate (None then).

        Unchanged files (same path, size and mtime) that an earlier run kept or rejected
        with the same options are settled without reading them. A source whose bytes the
        manifest already holds is a duplicate of the manifest's source while that file is
        still there unchanged (the kept record stays the canonical one), and otherwise the
        same image moved or re-timestamped, which counts as done.
        """
        path = str(image.path)
        stat = self.needs_work(image, self.options)
        if stat is None:
            return None
        try:
            data = read_image_file(image.path, self.max_pixels)
        except DecodeError as exc:
            self.reject(image, stat, None, Reject(exc.reason, exc.detail))
            return None
        sha = hashlib.sha256(data).hexdigest()
        kept = self.done_by_sha.get(sha)
        if kept is not None and kept.get("source") != path and mf.source_unchanged(kept):
            self._duplicate(image, stat, sha, str(kept["source"]))
            return None
        if sha in self.first_seen:
            self._duplicate(image, stat, sha, self.first_seen[sha])
            return None
        self.first_seen[sha] = path
        if kept is not None:  # kept before, under a path or timestamp that no longer is
            self.summary.skipped_done += 1
            return None
        return ImageSource(data, sha, stat)

    def needs_work(self, source: SourceImage | SourceVideo, options: str) -> tuple[int, int] | None:
        """The ``stat_key`` of a source to read, or None when it is settled without reading:
        unreadable (rejected), unchanged since an earlier run kept it (``skipped_done``
        counted), or unchanged since an earlier run with the same ``options`` rejected it
        (rejected again, with the earlier reason)."""
        path = str(source.path)
        try:
            stat = mf.stat_key(source.path)
        except OSError as exc:
            self.reject(source, (0, 0), None, Reject("unreadable", os_error_detail(exc)), options)
            return None
        if (path, *stat) in self.done_by_stat:
            self.summary.skipped_done += 1
            return None
        cached = self.rejections.cache.get((path, *stat, options))
        if cached is not None:
            if cached.get("sha256"):
                self.first_seen.setdefault(cached["sha256"], path)
            detail = str(cached.get("detail") or "rejected by an earlier run")
            again = Reject(cached["reason"], detail)
            self.reject(source, stat, cached.get("sha256"), again, options)
            return None
        return stat

    def _duplicate(self, image: SourceImage, stat: tuple[int, int], sha: str, of: str) -> None:
        self.reject(image, stat, sha, Reject("duplicate", f"same bytes as {of}", duplicate_of=of))

    def reject(
        self,
        image: SourceImage | SourceVideo,
        stat: tuple[int, int],
        sha: str | None,
        exc: Reject,
        options: str | None = None,
    ) -> None:
        """Count a rejection and append it to ``rejected.jsonl`` (under the run's options
        key, or ``options``: videos have their own). A transient reason
        (``decode.TRANSIENT_REASONS``) is marked ``"transient": true``: counted and listed
        like any other, but never reused by a later run."""
        self.reasons[exc.reason] += 1
        record = {
            "source": str(image.path),
            "sha256": sha,
            "reason": exc.reason,
            "detail": exc.detail,
            **exc.extra,
            "source_bytes": stat[0],
            "source_mtime_ns": stat[1],
            "options": self.options if options is None else options,
        }
        if exc.reason in TRANSIENT_REASONS:
            record["transient"] = True
        self.rejections.add(record)

    def reject_reason(
        self,
        source: SourceImage | SourceVideo,
        stat: tuple[int, int],
        sha: str | None,
        reason: str,
        detail: str,
        options: str | None = None,
        **extra: Any,
    ) -> None:
        """:meth:`reject` from a reason code and detail (for ``prepare_video``)."""
        self.reject(source, stat, sha, Reject(reason, detail, **extra), options)
