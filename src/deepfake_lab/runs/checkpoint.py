"""Complete, atomic training checkpoints and the RNG state they carry.

A checkpoint holds everything needed to continue bit-exactly: model and optimizer states,
counters, sampler and augmentation generators, the global RNG states, the resolved config and
the package version. It is written to a temp file and renamed into place, so a crash
mid-write leaves the previous checkpoint intact. Files are read with ``weights_only=True``:
only tensors and plain Python containers, never arbitrary pickled objects.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_lab import __version__
from deepfake_lab.errors import UserError
from deepfake_lab.io import atomic_write

FORMAT = "deepfake-lab/checkpoint"
FORMAT_VERSION = 1
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")
_NIMG = re.compile(r"^(?:ckpt|grid)-(\d+)\.(?:pt|png)$")


def checkpoint_name(nimg: int) -> str:
    """File name for a checkpoint taken after ``nimg`` images shown (sorts by progress)."""
    return f"ckpt-{nimg:010d}.pt"


def checkpoint_nimg(path: Path) -> int | None:
    """The image count in a ``ckpt-<nimg>.pt`` or ``grid-<nimg>.png`` file name, else None."""
    m = _NIMG.match(Path(path).name)
    return int(m.group(1)) if m else None


def capture_rng() -> dict[str, Any]:
    """The global RNG states of Python, NumPy and torch (CPU and every CUDA device)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        # NumPy arrays are not allowed by weights_only loading: keep the key as a tensor.
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    random.setstate(_to_tuple(state["python"]))
    name, key, *rest = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuple(x: Any) -> Any:
    return tuple(_to_tuple(v) for v in x) if isinstance(x, list | tuple) else x


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus format and version tags) to ``path`` atomically."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "version": __version__}
    payload.update(state)
    atomic_write(Path(path), lambda fh: torch.save(payload, fh))
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        UserError: missing, unreadable, or not one of our checkpoints.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise UserError(
            f"cannot read checkpoint {path} ({type(exc).__name__}); it may be truncated or not "
            "a deepfake-lab checkpoint"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a deepfake-lab training checkpoint")
    return state


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in ``folder``, oldest first (temp files are never listed)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def prune_checkpoints(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints; returns the deleted paths."""
    ckpts = list_checkpoints(folder)
    doomed = ckpts[:-keep] if keep > 0 else ckpts
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed
