"""Training machinery shared by every trainer (GAN, detector): devices, seeding,
determinism, signals, schedules and gradient norms."""

from __future__ import annotations

import os
import random
import signal
import threading
from contextlib import contextmanager

import numpy as np
import torch

from deepfake_lab.errors import UserError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a device this machine lacks (CUDA, an index
    past the last GPU, MPS) or cannot use is a one-line error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserError(f"device {name} was asked for but no CUDA device is available")
        if device.index is not None and device.index >= count:
            raise UserError(f"device {name}: there are only {count} CUDA device(s), 0-{count - 1}")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(f"device {name} was asked for but Apple's MPS is not available")
    elif device.type != "cpu":
        raise UserError(f"device {name} is not supported; use auto, cpu, cuda, cuda:N or mps")
    return device


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
