"""Which torch device to run on: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, checked
against what this machine has, with a one-line error when it lacks it."""

from __future__ import annotations

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


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively, so that autocast speeds training up.

    CUDA: yes. CPU: only with AVX512-BF16 or AMX instructions; elsewhere oneDNN emulates
    bfloat16 and autocast is slower than fp32, so callers stay in fp32 there.
    """
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        # Private probes of torch.cpu: a torch without them reads as "not native" (fp32).
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)
    return False
