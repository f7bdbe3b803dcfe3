"""Per-sample random draws, and batch statistics, that do not depend on how a batch is split
across processes.

Data-parallel training splits a global batch of ``B`` samples into ``world`` slices of
``B / world``, one per process. If every process drew its slice's random numbers from its own
stream, the run would depend on the number of processes, and could not match a one-process
run. Instead, every process holds the *same* generator state, draws the numbers for the
whole global batch (cheap next to the network), and keeps the rows of its own slice: the
process count changes who computes a sample, never what the sample is.

The helpers :func:`rand`, :func:`randn` and :func:`randint` take either a plain
``torch.Generator`` (one process: draw ``n`` rows) or a :class:`ShardedGenerator`.
:func:`global_batch_mean` is the same idea for a statistic a network keeps of its batches.
"""

from __future__ import annotations

import torch
from torch import Tensor


class ShardedGenerator:
    """A ``torch.Generator`` shared by all ranks, drawing for the global batch.

    Args:
        generator: the stream; its state must be equal on every rank.
        rank: this process's index in ``[0, world)``.
        world: number of processes the global batch is split over.
    """

    def __init__(self, generator: torch.Generator, rank: int = 0, world: int = 1) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside [0, {world})")
        self.generator, self.rank, self.world = generator, rank, world

    @property
    def device(self) -> torch.device:
        return self.generator.device

    def rows(self, n: int) -> slice:
        """This rank's rows of a global batch of ``n * world`` (``n`` local rows)."""
        return slice(self.rank * n, (self.rank + 1) * n)

    def get_state(self) -> Tensor:
        return self.generator.get_state()

    def set_state(self, state: Tensor) -> None:
        self.generator.set_state(state)


RandomSource = torch.Generator | ShardedGenerator | None


def _split(source: RandomSource, n: int) -> tuple[torch.Generator | None, int, slice | None]:
    if isinstance(source, ShardedGenerator):
        return source.generator, n * source.world, source.rows(n)
    return source, n, None


def _device(source: RandomSource, device: torch.device | str | None) -> torch.device | None:
    # Numbers are made where the generator lives (a CPU generator cannot fill a CUDA tensor).
    return source.device if source is not None else device


def rand(source: RandomSource, n: int, *shape: int, device=None) -> Tensor:
    """``(n, *shape)`` U[0, 1) numbers, float32, on the generator's device."""
    g, total, rows = _split(source, n)
    r = torch.rand(total, *shape, generator=g, device=_device(source, device))
    return r if rows is None else r[rows]


def randn(source: RandomSource, n: int, *shape: int, device=None) -> Tensor:
    """``(n, *shape)`` standard normal numbers, float32, on the generator's device."""
    g, total, rows = _split(source, n)
    r = torch.randn(total, *shape, generator=g, device=_device(source, device))
    return r if rows is None else r[rows]


def randint(source: RandomSource, low: int, high: int, n: int, device=None) -> Tensor:
    """``(n,)`` integers in ``[low, high)``, int64, on the generator's device."""
    g, total, rows = _split(source, n)
    r = torch.randint(low, high, (total,), generator=g, device=_device(source, device))
    return r if rows is None else r[rows]


def global_batch_mean(x: Tensor) -> Tensor:
    """``x.mean(0)`` over the global batch: under ``torch.distributed`` (equal slices per
    rank) the ranks' means are averaged, so a running statistic kept from it (StyleGAN2's
    mean w) is the one a one-process run keeps. Not differentiable: for statistics only."""
    m = x.detach().mean(0)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        m = m.clone()
        torch.distributed.all_reduce(m)
        m /= torch.distributed.get_world_size()
    return m
