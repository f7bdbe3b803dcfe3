"""Run logging: a human log, metrics JSONL, TensorBoard events and a progress bar.

Only this module writes the run's log files, so a DDP trainer can create it on rank 0 only.
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from deepfake_lab.io import append_jsonl


class RunLogger:
    """Writes ``log.txt``, ``metrics.jsonl`` and TensorBoard events in ``run_dir``.

    Args:
        run_dir: the run folder (must exist).
        tensorboard: also write TensorBoard events (``events.out.tfevents.*``).
        console: where human messages are echoed (None: quiet).
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True, console: Console | None = None):
        self.run_dir = Path(run_dir)
        self.console = console
        self._tb = None
        if tensorboard:
            # Imported lazily: tensorboard takes a moment to import and is optional at test time.
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.run_dir))

    def info(self, message: str) -> None:
        """Append a timestamped line to ``log.txt`` and echo it to the console."""
        stamp = _dt.datetime.now().isoformat(timespec="seconds")
        # Messages name user files: a name that is not UTF-8 is written with escapes, and no
        # name is read as console markup.
        with open(self.run_dir / "log.txt", "a", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(f"{stamp} {message}\n")
        if self.console is not None:
            self.console.print(message, markup=False, highlight=False)

    def scalars(self, nimg: int, values: dict[str, float], **extra: Any) -> dict[str, Any]:
        """Record one measurement point: a ``metrics.jsonl`` line and TensorBoard scalars."""
        record: dict[str, Any] = {"kimg": round(nimg / 1000.0, 6), **extra}
        for key, value in values.items():
            record[key] = float(value) if math.isfinite(float(value)) else None
        append_jsonl(self.run_dir / "metrics.jsonl", record)
        if self._tb is not None:
            for key, value in values.items():
                self._tb.add_scalar(key, float(value), global_step=nimg)
            self._tb.flush()
        return record

    def image(self, tag: str, image_hwc_uint8: Any, nimg: int) -> None:
        """Add an (H, W, 3) uint8 image to TensorBoard."""
        if self._tb is not None:
            self._tb.add_image(tag, image_hwc_uint8, global_step=nimg, dataformats="HWC")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class NullLogger:
    """RunLogger's interface, writing nothing: ranks > 0 of a data-parallel run."""

    def info(self, message: str) -> None:
        pass

    def scalars(self, nimg: int, values: dict[str, float], **extra: Any) -> dict[str, Any]:
        return {}

    def image(self, tag: str, image_hwc_uint8: Any, nimg: int) -> None:
        pass

    def close(self) -> None:
        pass


def make_progress(console: Console | None = None, disable: bool = False) -> Progress:
    """A progress bar for training: kimg done/total, rate, losses, elapsed and ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.2f}/{task.total:.2f} kimg"),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
        transient=False,
    )
