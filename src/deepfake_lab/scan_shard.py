"""Splitting a scan: shards across processes or machines, and a pool of decoding threads
within one process.

A file belongs to shard ``blake2b(path) mod N``, the path as listed (the argument as given,
or the folder argument joined with the name found under it): the rule needs no listing
order, no count and no other file, so every process of an ``N``-way scan agrees on it
without talking to the others, and each file lands in exactly one shard. Every process must
be given the same paths, spelt the same way.

Within a process, :func:`ordered_map` reads and decodes files in threads (PIL, OpenCV and
hashlib release the GIL) a bounded distance ahead of the scoring, and hands the results
back in input order, so the output is the inline one.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from deepfake_lab.errors import UserError

T = TypeVar("T")
R = TypeVar("R")

#: What ``{shard}`` in an output name becomes: ``scores-{shard}.jsonl`` -> ``scores-0-of-4.jsonl``.
SHARD_PLACEHOLDER = "{shard}"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``0 <= index < count``).

    Attributes:
        from_env: read from torchrun's ``RANK`` and ``WORLD_SIZE``, not from ``--shard``.
    """

    index: int
    count: int
    from_env: bool = False

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def tag(self) -> str:
        """``I-of-N``: the shard in a file name."""
        return f"{self.index}-of-{self.count}"

    def holds(self, path: str | Path) -> bool:
        """Whether ``path`` (as listed) belongs to this shard."""
        return shard_of(path, self.count) == self.index


def shard_of(path: str | Path, count: int) -> int:
    """The shard (``0 .. count-1``) of a file: the first 8 bytes of the BLAKE2b digest of
    its path's bytes (``os.fsencode``: a name that is not UTF-8 hashes as it is on disk),
    big-endian, mod ``count``."""
    digest = hashlib.blake2b(os.fsencode(os.fspath(path)), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def parse_shard(text: str | None) -> Shard | None:
    """``"I/N"`` -> :class:`Shard` (None: no sharding).

    Raises:
        UserError: not two whole numbers with ``0 <= I < N``.
    """
    if text is None:
        return None
    index, sep, count = str(text).strip().partition("/")
    try:
        shard = Shard(int(index), int(count)) if sep else None
    except ValueError:
        shard = None
    if shard is None or not 0 <= shard.index < shard.count:
        raise UserError(
            f"--shard must be I/N, two whole numbers with 0 <= I < N (0/4 is the first of 4 "
            f"shards), got {text!r}"
        )
    return shard


def resolve_shard(text: str | None, environ: Mapping[str, str] | None = None) -> Shard | None:
    """The shard this process scans: ``--shard`` when given, else torchrun's ``RANK`` /
    ``WORLD_SIZE`` when ``WORLD_SIZE`` is over 1 (``from_env`` set), else None.

    Raises:
        UserError: a bad ``--shard``, or ``RANK``/``WORLD_SIZE`` that do not make a shard.
    """
    if text is not None:
        return parse_shard(text)
    env = os.environ if environ is None else environ
    rank, world = env.get("RANK"), env.get("WORLD_SIZE")
    if rank is None or world is None or world.strip() == "1":
        return None
    try:
        shard = Shard(int(rank), int(world), from_env=True)
    except ValueError:
        shard = None
    if shard is None or not 0 <= shard.index < shard.count:
        raise UserError(
            f"RANK={rank!r} and WORLD_SIZE={world!r} (from torchrun) do not make a shard: "
            "unset them, or give --shard I/N"
        )
    return shard


def shard_output(path: str | Path | None, shard: Shard | None) -> Path | None:
    """An output path for one shard: ``{shard}`` in it becomes ``I-of-N``; without it, a
    shard read from torchrun gets ``.I-of-N`` before the suffix (``scores.0-of-4.jsonl``),
    because every rank is given the same command line. Otherwise ``path`` as it is."""
    if path is None:
        return None
    text = os.fspath(path)
    if shard is None:
        return Path(text)
    if SHARD_PLACEHOLDER in text:
        return Path(text.replace(SHARD_PLACEHOLDER, shard.tag))
    if not shard.from_env:
        return Path(text)
    p = Path(text)
    return p.with_name(f"{p.stem}.{shard.tag}{p.suffix}")


def shard_device(device: str, shard: Shard | None, environ: Mapping[str, str] | None = None) -> str:
    """``auto`` under torchrun on a machine with GPUs: this rank's own GPU
    (``cuda:LOCAL_RANK``), so that the ranks of one machine do not all share the first."""
    env = os.environ if environ is None else environ
    local = env.get("LOCAL_RANK", "")
    if device != "auto" or shard is None or not shard.from_env or not local.isdigit():
        return device
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        return device
    return f"cuda:{int(local) % torch.cuda.device_count()}"


def default_workers() -> int:
    """Decoding threads when none are asked for: the CPUs this process may use, at most 4
    (beyond that the scoring, not the decoding, is the limit on these small images)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def check_workers(workers: int | None) -> int:
    """``workers`` (None: :func:`default_workers`), checked.

    Raises:
        UserError: a negative count.
    """
    if workers is None:
        return default_workers()
    if workers < 0:
        raise UserError(f"--workers must be 0 (decode inline) or more, got {workers}")
    return workers


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int, ahead: int | None = None
) -> Iterator[R]:
    """``map(fn, items)``, with ``workers`` threads running ``fn`` up to ``ahead`` items
    (default ``4 * workers``) before the consumer; results come in input order.

    ``workers`` 0 runs ``fn`` inline. An exception from ``fn`` is raised here, at its item.
    When the consumer stops (Ctrl-C, an error, ``close()``), queued items are dropped and
    only the ones in flight are waited for.
    """
    if workers <= 0:
        yield from map(fn, items)
        return
    ahead = max(ahead or 4 * workers, workers)
    it = iter(items)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="scan-decode")
    pending: deque[Future[R]] = deque()
    try:
        for item in it:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead:
                break
        while pending:
            done = pending.popleft()
            for item in it:  # refill by one before waiting, so the pool never idles
                pending.append(pool.submit(fn, item))
                break
            yield done.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def per_thread(first: T, new: Callable[[], T] | None) -> Callable[[], T]:
    """A getter of the calling thread's own object: ``first`` for the thread that calls
    first, one from ``new()`` for each other thread (made on its first call); without
    ``new``, ``first`` for every thread (the caller then makes the calls one at a time)."""
    if new is None:
        return lambda: first
    local = threading.local()
    owner: list[int] = []
    lock = threading.Lock()

    def get() -> T:
        if not hasattr(local, "obj"):
            with lock:
                mine = not owner
                if mine:
                    owner.append(threading.get_ident())
            local.obj = first if mine else new()
        return local.obj

    return get
