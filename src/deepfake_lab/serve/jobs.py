"""A bounded queue of video scans: submitted jobs wait (up to a limit), a fixed number of
worker threads run them, and a finished job's folder is deleted after a time to live.

Memory and disk stay bounded under load: a full queue refuses new work (the API answers
503) instead of growing, and nothing outlives its TTL.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deepfake_lab.errors import UserError

Status = Literal["queued", "running", "done", "error"]


class QueueFull(Exception):
    """Too many jobs are waiting; try again later."""


@dataclass
class Job:
    """One video scan.

    Attributes:
        id: random, unguessable (it is the only key to the result).
        folder: the job's private folder (the upload, then its pictures); deleted with it.
        filename: the name the client gave, for display only.
        status: queued -> running -> done | error.
        progress: ``{"frames": done, "expected": n or None}`` while running.
        result: the scan record when done; ``error``: one line when it failed.
    """

    id: str
    folder: Path
    filename: str
    model: str
    status: Status = "queued"
    progress: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None

    def public(self) -> dict[str, Any]:
        """What ``GET /api/v1/jobs/{id}`` answers."""
        return {
            "id": self.id,
            "filename": self.filename,
            "model": self.model,
            "status": self.status,
            "progress": dict(self.progress),
            "result": self.result,
            "error": self.error,
        }


Work = Callable[[Job], dict[str, Any]]


class JobQueue:
    """Jobs run by ``workers`` threads; at most ``max_waiting`` wait.

    Args:
        root: parent of the jobs' folders (private to this server).
        workers: jobs run at once.
        max_waiting: jobs that may wait; :meth:`submit` raises :class:`QueueFull` past it.
        ttl_s: a finished job (and its folder) is dropped this long after it ends.
        max_kept: finished jobs kept at most; the oldest beyond it are dropped early.
    """

    def __init__(
        self, root: Path, workers: int, max_waiting: int, ttl_s: float, max_kept: int = 256
    ) -> None:
        self.root, self.ttl_s, self.max_kept = Path(root), ttl_s, max_kept
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._waiting: queue.Queue[tuple[Job, Work] | None] = queue.Queue(maxsize=max_waiting)
        self._threads = [
            threading.Thread(target=self._run, name=f"scan-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def new_job(self, filename: str, model: str) -> Job:
        """A job with its own empty folder, not yet queued."""
        job_id = uuid.uuid4().hex
        folder = self.root / job_id
        folder.mkdir(mode=0o700)
        return Job(job_id, folder, filename, model)

    def submit(self, job: Job, work: Work) -> None:
        """Queue ``work(job)``; its return value becomes ``job.result``.

        Raises:
            QueueFull: ``max_waiting`` jobs wait already (the job's folder is deleted).
        """
        self.expire()
        try:
            self._waiting.put_nowait((job, work))
        except queue.Full:
            shutil.rmtree(job.folder, ignore_errors=True)
            raise QueueFull from None
        with self._lock:
            self._jobs[job.id] = job

    def get(self, job_id: str) -> Job | None:
        """The job, or None when unknown or expired."""
        self.expire()
        with self._lock:
            return self._jobs.get(job_id)

    def counts(self) -> dict[str, int]:
        """Jobs per status (for ``/healthz``)."""
        with self._lock:
            out: dict[str, int] = {}
            for job in self._jobs.values():
                out[job.status] = out.get(job.status, 0) + 1
            return out

    def expire(self, now: float | None = None) -> None:
        """Drop finished jobs older than the TTL, and the oldest past ``max_kept``, with
        their folders."""
        now = time.time() if now is None else now
        with self._lock:
            finished = sorted(
                (j for j in self._jobs.values() if j.finished is not None),
                key=lambda j: j.finished or 0.0,
            )
            surplus = max(len(finished) - self.max_kept, 0)
            old = finished[:surplus] + [
                j for j in finished[surplus:] if now - (j.finished or now) > self.ttl_s
            ]
            for job in old:
                del self._jobs[job.id]
        for job in old:
            shutil.rmtree(job.folder, ignore_errors=True)

    def close(self) -> None:
        """Stop the workers after the running jobs and delete every job's folder."""
        for _ in self._threads:
            while True:
                try:
                    self._waiting.put(None, timeout=0.1)
                    break
                except queue.Full:  # drop waiting jobs to make room for the stop signal
                    try:
                        self._waiting.get_nowait()
                    except queue.Empty:
                        pass
        for t in self._threads:
            t.join(timeout=30)
        with self._lock:
            jobs, self._jobs = list(self._jobs.values()), {}
        for job in jobs:
            shutil.rmtree(job.folder, ignore_errors=True)

    def _run(self) -> None:
        while True:
            item = self._waiting.get()
            if item is None:
                return
            job, work = item
            job.status = "running"
            try:
                job.result = work(job)
                job.status = "done"
            except UserError as exc:
                job.error, job.status = str(exc), "error"
            except Exception as exc:  # a bad file costs its job, never the worker
                job.error, job.status = f"the scan failed: {type(exc).__name__}: {exc}", "error"
            finally:
                job.finished = time.time()
