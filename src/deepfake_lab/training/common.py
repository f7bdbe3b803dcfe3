"""Training machinery shared by every trainer (GAN, detector): seeding,
determinism, signals, schedules and gradient norms."""

from __future__ import annotations

import os
import random
import signal
import threading
from contextlib import contextmanager

import numpy as np
import torch


def crossed(prev_nimg: int, cur_nimg: int, every_kimg: float) -> bool:
    """True when an interval boundary of ``every_kimg`` lies in (prev_nimg, cur_nimg]."""
    every = max(1, round(every_kimg * 1000))
    return prev_nimg // every != cur_nimg // every


@contextmanager
def stop_on_signals():
    """Turn SIGINT/SIGTERM into a flag the loop checks, so it can checkpoint and exit."""
    flag = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, _frame):
        flag["signal"] = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def seed_everything(seed: int) -> None:
    """Seed the global RNGs (models are initialised from torch's global generator)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def determinism(on: bool):
    """Deterministic kernels while training, restoring the process's settings afterwards."""
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    if on:
        # cuBLAS needs this before its first use to be deterministic; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on, warn_only=True)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2:]


def grad_norm(params: list[torch.nn.Parameter]) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
