"""Data-parallel training across processes with ``torch.distributed`` (launched by torchrun).

``torchrun --nproc_per_node N -m deepfake_lab train gan ...`` starts N copies of the command;
each reads its rank from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``), joins the process group (NCCL on CUDA, gloo on CPU) and
trains on its slice of every global batch. What this module provides:

- :func:`init_distributed` / :class:`DistContext`: the group, the rank, and this rank's device.
- :func:`average_gradients`: the mean of every gradient over the ranks, so each rank's
  optimizer takes the step a one-process run takes on the whole batch.
- :class:`GlobalBatchNorm`: BatchNorm whose statistics are those of the global batch (torch's
  ``SyncBatchNorm`` only runs on GPUs).
- :func:`all_mean`, :func:`any_rank`, :func:`broadcast`, :func:`gather_objects`: the few
  collective decisions and statistics the trainers share.

One process (``WORLD_SIZE`` unset or 1) never touches ``torch.distributed``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as fc
from torch import Tensor, nn

from deepfake_lab.errors import UserError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a data-parallel run (rank 0 of 1 when alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes logs, reports and checkpoints."""
        return self.rank == 0


SINGLE = DistContext()


def env_world() -> tuple[int, int, int]:
    """``(rank, world, local_rank)`` from torchrun's environment ((0, 1, 0) without it)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise UserError(
            "RANK, WORLD_SIZE and LOCAL_RANK must be integers; launch with torchrun"
        ) from None
    return rank, world, local


def init_distributed(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1.

    Args:
        device: the configured device; ``cuda`` becomes ``cuda:LOCAL_RANK``.

    Returns:
        The context and the device this rank trains on.
    """
    rank, world, local = env_world()
    if world <= 1:
        return SINGLE, device
    ctx = DistContext(rank, world, local)
    device = rank_device(device, ctx)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # Rank 0 alone computes metrics and writes reports while the others wait in their
        # next collective: allow that an hour.
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo", timeout=timedelta(hours=1)
        )
    return ctx, device


def rank_device(device: torch.device, ctx: DistContext) -> torch.device:
    """``cuda`` becomes this rank's GPU (``cuda:LOCAL_RANK``); other devices stay."""
    if ctx.active and device.type == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return device


def world_change_note(saved_world: int, ctx: DistContext) -> str | None:
    """What resuming a checkpoint of ``saved_world`` processes with another count means."""
    if saved_world == ctx.world:
        return None
    return (
        f"the checkpoint was written by {saved_world} process(es) and this run has "
        f"{ctx.world}: the global batch, data order, latents and augmentation continue "
        "exactly (they are drawn for the global batch), but the per-process random streams "
        "(torch's global generator: dropout) restart and sums are "
        "reduced in another order, so the run is no longer bit-identical to an "
        "uninterrupted one; resume with the same --nproc_per_node for that"
    )


def resume_trainer(
    trainer: Any, state: dict[str, Any], logger: Any, ctx: DistContext, where: Callable[[], str]
) -> None:
    """Load a checkpoint's ``state`` into a GAN or detector trainer and log where it resumed
    (``where()``, read after loading) and what a changed process count means."""
    trainer.load_state_dict(state)
    logger.info(f"resumed at {where()}")
    note = world_change_note(int(state.get("world_size", 1)), ctx)
    if note:
        logger.info(note)


@contextmanager
def distributed_run(device: torch.device) -> Iterator[tuple[DistContext, torch.device]]:
    """:func:`init_distributed` for the length of a run, then :func:`shutdown`: clean (all
    ranks wait for each other) when the run ends normally, at once after an error."""
    ctx, device = init_distributed(device)
    try:
        yield ctx, device
    except BaseException:
        shutdown(ctx, clean=False)
        raise
    shutdown(ctx)


def shutdown(ctx: DistContext, clean: bool = True) -> None:
    """Leave the process group (a no-op alone).

    Args:
        clean: the run ended normally: wait for every rank first (rank 0 may still be
            calibrating or writing its report; a rank that tears the group down under it
            aborts). After an error, leave at once: torchrun stops the others.
    """
    if ctx.active and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


def check_batch(batch: int, ctx: DistContext) -> int:
    """This rank's share of a global batch, which must split evenly."""
    if batch % ctx.world:
        raise UserError(
            f"train.batch {batch} does not split over {ctx.world} processes; use a multiple "
            f"of {ctx.world} (train.batch is the global batch, summed over processes)"
        )
    return batch // ctx.world


def average_gradients(params: list[nn.Parameter], ctx: DistContext) -> None:
    """Replace every gradient by its mean over the ranks, in one flat all-reduce.

    Each rank's loss is the mean over its slice, so the mean of the ranks' gradients is the
    gradient of the mean over the global batch. Parameters without a gradient are left
    alone (as a one-process optimizer skips them); every rank computes the same graph, so the
    ranks reduce buffers of the same layout.
    """
    params = [p for p in params if p.grad is not None]
    if not ctx.active or not params:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])  # type: ignore[union-attr]
    dist.all_reduce(flat)
    flat /= ctx.world
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def all_mean(values: Tensor, ctx: DistContext) -> Tensor:
    """The mean over ranks of a tensor of statistics (the tensor itself alone)."""
    if not ctx.active:
        return values
    out = values.detach().clone()
    dist.all_reduce(out)
    return out / ctx.world


def all_sum(values: Tensor, ctx: DistContext) -> Tensor:
    """The sum over ranks of a tensor of counts (the tensor itself alone)."""
    if not ctx.active:
        return values
    out = values.detach().clone()
    dist.all_reduce(out)
    return out


def any_rank(flags: list[bool], ctx: DistContext) -> list[bool]:
    """Each flag, True when it is set on any rank (one all-reduce for all of them): stop
    decisions (a signal reached one process, one ran out of time) must be taken by all
    ranks at the same step, or the others would wait forever in the next collective."""
    if not ctx.active:
        return list(flags)
    t = torch.tensor([1.0 if f else 0.0 for f in flags])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def broadcast(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank (a run folder, a decision)."""
    if not ctx.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` alone)."""
    if not ctx.active:
        return [obj]
    out: list[Any] = [None] * ctx.world
    # Tensors travel as NumPy arrays: unpickling torch storages inside the collective
    # fails under the weights-only loading this project enforces.
    dist.all_gather_object(out, _map_tensors(obj, lambda t: ("__tensor__", t.cpu().numpy())))
    return [_map_tensors(o, None) for o in out]


def _map_tensors(obj: Any, to_wire: Any) -> Any:
    """Tensors -> wire form (``to_wire``), or back (``to_wire=None``), through dicts,
    lists and tuples."""
    if to_wire is not None and isinstance(obj, Tensor):
        return to_wire(obj)
    if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == "__tensor__" and to_wire is None:
        return torch.from_numpy(obj[1])
    if isinstance(obj, dict):
        return {k: _map_tensors(v, to_wire) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_map_tensors(v, to_wire) for v in obj)
    return obj


def barrier(ctx: DistContext) -> None:
    if ctx.active:
        dist.barrier()


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch: per-channel sums and squared sums are summed over
    the ranks (differentiably, so gradients, and R1's double backward, see the same global
    statistics a one-process run sees). Works with gloo on CPU, unlike ``SyncBatchNorm``.
    Outside training, or alone, it is plain BatchNorm."""

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D)")

    def forward(self, x: Tensor) -> Tensor:
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if not (self.training and self.track_running_stats) or world == 1:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        xf = x.float()
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float32, device=x.device)
        stats = torch.cat([xf.sum(dims), xf.square().sum(dims), count])
        # Differentiable: the backward of an all-reduce is an all-reduce of the gradients.
        stats = fc.wait_tensor(fc.all_reduce(stats, "sum", dist.group.WORLD))
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean.square()).clamp_min(0)
        with torch.no_grad():
            assert self.running_mean is not None and self.running_var is not None
            self.num_batches_tracked.add_(1)  # type: ignore[union-attr]
            # momentum None: a cumulative average, as torch's BatchNorm (precise BN uses it).
            m = self.momentum
            if m is None:
                m = 1.0 / float(self.num_batches_tracked)  # type: ignore[arg-type]
            self.running_mean.lerp_(mean.to(self.running_mean), m)
            unbiased = var * (n / (n - 1).clamp_min(1))
            self.running_var.lerp_(unbiased.to(self.running_var), m)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_batchnorm(module: nn.Module, ctx: DistContext) -> nn.Module:
    """Swap every BatchNorm for :class:`GlobalBatchNorm` (in place; alone: unchanged).

    Weights and running statistics carry over, and the state-dict keys do not change, so
    checkpoints load either way. (:class:`GlobalBatchNorm` serves CUDA/NCCL too; torch's
    fused ``SyncBatchNorm`` would be faster there, but this one is the one tested here.)
    """
    if not ctx.active:
        return module
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(
            child, GlobalBatchNorm
        ):
            new = GlobalBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine,
                child.track_running_stats,
            )  # fmt: skip
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            setattr(module, name, new)
        else:
            convert_batchnorm(child, ctx)
    return module
