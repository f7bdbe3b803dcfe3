"""Simulating a user's Ctrl-C or a scheduler's SIGTERM at a chosen training step."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def signal_at_step(
    monkeypatch, trainer_cls: type, step: int, sig: int = signal.SIGTERM
) -> Iterator[None]:
    """While active, ``trainer_cls.train_step`` sends ``sig`` to this process right after the
    step that brings ``self.step`` to ``step``; the real step is restored on exit."""
    real_step = trainer_cls.train_step

    def step_then_signal(self):
        out = real_step(self)
        if self.step == step:
            os.kill(os.getpid(), sig)
        return out

    monkeypatch.setattr(trainer_cls, "train_step", step_then_signal)
    try:
        yield
    finally:
        monkeypatch.setattr(trainer_cls, "train_step", real_step)
