"""Config fields every trainer shares for data-parallel runs (``torchrun``), defined once."""

from __future__ import annotations

from typing import Any

from pydantic import Field

SYNC_BATCHNORM: Any = Field(
    True,
    description="Under torchrun: BatchNorm over the global batch, exactly as one process "
    "(one all-reduce per BatchNorm layer and pass); false: over each process's slice "
    "(faster, DistributedDataParallel's default, no longer equal to one process).",
)


def global_batch_field(default: int) -> Any:
    """``train.batch``: the global batch, whatever the number of processes."""
    return Field(
        default, ge=1, description="Global batch: under torchrun, split evenly over the processes."
    )
