"""Content fingerprints: sha256 of a file, and of a model's weights."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    """A fingerprint of a state dict: sha256 over sorted names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
