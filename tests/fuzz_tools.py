"""Shared pieces of the fuzz tests (``tests/fuzz/``): mutated copies of valid files, the
settings every target runs under, and a memory cap per case.

Each target starts from small valid files and lets hypothesis flip bits, overwrite bytes
(with the integers that break size fields: 0, 1, 0x7fffffff, 0xffffffff, ...), truncate,
insert, delete and repeat spans, several edits per case, positions drawn with a bias to the
first bytes where headers are. Runs are derandomized (the same cases every run, so CI never
fails on a case it did not see before) unless ``DEEPFAKE_LAB_FUZZ_EXAMPLES=N`` asks for a
longer, random search, e.g. ``DEEPFAKE_LAB_FUZZ_EXAMPLES=5000 pytest tests/fuzz``.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator, Sequence
from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_EXAMPLES = os.environ.get("DEEPFAKE_LAB_FUZZ_EXAMPLES")

# Values that break length and size fields when written over them.
_INTERESTING_32 = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
                   0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)  # fmt: skip

# Headroom over the address space in use when a case starts. A file that makes a decoder
# ask for more than this fails the case (its error says out_of_memory) instead of swapping
# the machine; every guard (max_pixels, the XMP size limit, ...) keeps a case far below it.
MEMORY_HEADROOM = 1 << 30


def fuzz_settings(examples: int, deadline_s: float) -> settings:
    """Settings of one fuzz target: ``examples`` cases, each bounded by ``deadline_s``.

    The deadline is a hang detector, not a speed test: tens of times a case's usual time, so
    that a loaded machine never trips it while a decoder stuck in a loop does.
    """
    return settings(
        max_examples=int(_EXAMPLES) if _EXAMPLES else examples,
        deadline=timedelta(seconds=deadline_s),
        derandomize=not _EXAMPLES,
        database=None,  # nothing written into the checkout
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[bytes], max_edits: int = 4) -> bytes:
    """One of ``seeds`` with 1 to ``max_edits`` random edits."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, max_edits))):
        kind = draw(st.sampled_from(("flip", "byte", "int32", "truncate", "insert", "delete",
                                     "repeat")))  # fmt: skip
        n = len(data)
        if n == 0:
            data += draw(st.binary(min_size=1, max_size=16))
            continue
        # Half the positions fall in the first 64 bytes: the headers.
        at = draw(st.one_of(st.integers(0, min(n, 64) - 1), st.integers(0, n - 1)))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[at] = draw(st.sampled_from((0x00, 0x01, 0x7F, 0x80, 0xFF)) | st.integers(0, 255))
        elif kind == "int32":
            value = draw(st.sampled_from(_INTERESTING_32))
            order = draw(st.sampled_from((">I", "<I")))
            data[at : at + 4] = struct.pack(order, value)
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:  # repeat a span somewhere else (duplicated chunks, boxes, markers)
            span = bytes(data[at : at + draw(st.integers(1, 256))])
            where = draw(st.integers(0, n))
            data[where:where] = span
    return bytes(data)


def _address_space() -> int | None:
    """Bytes of address space this process maps now (Linux), else None."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def memory_cap(headroom: int = MEMORY_HEADROOM) -> Iterator[None]:
    """Limit this process's address space to what it maps now plus ``headroom`` while the
    block runs (Linux; elsewhere no limit). An allocation past it fails with MemoryError (or
    the library's out-of-memory error) instead of taking the machine's memory."""
    try:
        import resource
    except ImportError:  # not on this platform
        yield
        return
    now = _address_space()
    if now is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = now + headroom
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
