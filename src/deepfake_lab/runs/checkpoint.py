"""Complete, atomic training checkpoints and the RNG state they carry.

A checkpoint holds everything needed to continue bit-exactly: model and optimizer states,
counters, sampler and augmentation generators, the global RNG states, the resolved config and
the package version. It is written to a temp file and renamed into place, so a crash
mid-write leaves the previous checkpoint intact; the file and its folder are flushed to disk
after the rename. Files are read with ``weights_only=True``: only tensors and plain Python
containers, never arbitrary pickled objects, and containers nested deeper than
:data:`MAX_NESTING` are refused as damaged.

Every checkpoint carries ``content_sha256``, a sha256 over all its other values (tensor bytes
included), checked on load: a flipped bit on disk is an error, not a silently different
model. Checkpoints written before checksums existed still load, unverified
(:func:`checkpoint_note` says so). To resume a run, :func:`load_newest_checkpoint` reads its
newest checkpoint that loads, skipping truncated or damaged newer ones and saying why.
"""

from __future__ import annotations

import hashlib
import random
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_lab import __version__
from deepfake_lab.errors import UserError
from deepfake_lab.io import atomic_write

FORMAT = "deepfake-lab/checkpoint"
#: 2: with ``content_sha256``; 1 (and older): without.
FORMAT_VERSION = 2
#: The key holding the checksum of everything else in the checkpoint.
CHECKSUM_KEY = "content_sha256"
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")
# Containers nest a few levels in a real checkpoint (optimizer state: 4); a file nesting
# deeper is damaged or hostile, and would overflow the stack of anything that walks it.
MAX_NESTING = 32
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


def content_sha256(state: Mapping[str, Any]) -> str:
    """sha256 over every value of a checkpoint except ``content_sha256`` itself.

    Covers keys, value types, tensor dtypes, shapes and bytes, in the order the dicts hold
    them (pickling keeps that order, so a loaded checkpoint hashes as the saved one did).
    """
    h = hashlib.sha256()
    _hash_value(h, {k: v for k, v in state.items() if k != CHECKSUM_KEY})
    return h.hexdigest()


def _hash_value(h: Any, value: Any) -> None:
    # Each value is tagged with its type and length, so that no two structures feed the
    # same bytes.
    if isinstance(value, torch.Tensor):
        t = value.detach()
        if t.layout != torch.strided:
            t = t.to_dense()
        t = t.cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    elif isinstance(value, Mapping):
        h.update(f"d{len(value)}|".encode())
        for k, v in value.items():
            _hash_value(h, k)
            _hash_value(h, v)
    elif isinstance(value, list | tuple):
        h.update(f"{'l' if isinstance(value, list) else 't'}{len(value)}|".encode())
        for v in value:
            _hash_value(h, v)
    elif isinstance(value, set | frozenset):
        # Set order depends on string hashing, which changes between processes.
        parts = []
        for v in value:
            sub = hashlib.sha256()
            _hash_value(sub, v)
            parts.append(sub.digest())
        h.update(f"S{len(parts)}|".encode() + b"".join(sorted(parts)))
    elif isinstance(value, bytes | bytearray):
        h.update(f"b{len(value)}|".encode() + bytes(value))
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        h.update(f"s{len(data)}|".encode() + data)
    else:  # None, bool, int, float (repr round-trips exactly), torch.dtype, torch.device
        text = f"{type(value).__name__}:{value!r}".encode()
        h.update(f"v{len(text)}|".encode() + text)


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus format and version tags and its checksum) to ``path`` atomically,
    then flush the file and its folder to disk."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "version": __version__}
    payload.update(state)
    payload[CHECKSUM_KEY] = content_sha256(payload)
    atomic_write(Path(path), lambda fh: torch.save(payload, fh), sync_folder=True)
    return Path(path)


class CheckpointError(UserError):
    """A checkpoint file that cannot be used.

    Attributes:
        path: the file.
        reason: why, in a phrase that does not repeat the path.
    """

    def __init__(self, path: Path, message: str, reason: str) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` and check its checksum.

    Checkpoints without a checksum (written by older versions) load unverified; see
    :func:`checkpoint_note`.

    Raises:
        CheckpointError: missing, unreadable (e.g. truncated), not one of our checkpoints,
            or damaged (its content does not match its checksum); a UserError.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, f"checkpoint not found: {path}", "not found")
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 75": a damaged file, below
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise CheckpointError(
            path,
            f"cannot read checkpoint {path} ({type(exc).__name__}); it may be truncated or not "
            "a deepfake-lab checkpoint",
            f"unreadable ({type(exc).__name__}), truncated or not a checkpoint",
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            path, f"{path} is not a deepfake-lab training checkpoint", "not our checkpoint"
        )
    if _nesting(state) > MAX_NESTING:
        reason = f"damaged: its values nest more than {MAX_NESTING} levels deep"
        raise CheckpointError(path, f"checkpoint {path} is {reason}", reason)
    stored = state.get(CHECKSUM_KEY)
    if stored is not None:
        digest = content_sha256(state)
        if digest != stored:
            reason = (
                "damaged: its content does not match the checksum stored in it "
                f"({digest[:12]} != {str(stored)[:12]})"
            )
            raise CheckpointError(
                path, f"checkpoint {path} is {reason}; use an earlier checkpoint", reason
            )
    return state


def _nesting(value: Any) -> int:
    """How deep containers nest in ``value`` (1: a flat dict), counted without recursion, so
    that a hostile file cannot overflow the stack here; stops counting past MAX_NESTING."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = [*item.keys(), *item.values()]
        elif isinstance(item, list | tuple | set | frozenset):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_NESTING:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


def checkpoint_note(path: str | Path, state: Mapping[str, Any]) -> str | None:
    """A note for a loaded checkpoint that carries no checksum (None when it had one)."""
    if CHECKSUM_KEY in state:
        return None
    return (
        f"{path} was written before checkpoints carried a checksum: loaded without an "
        "integrity check"
    )


@dataclass
class FoundCheckpoint:
    """The newest checkpoint of a folder that loads, and the newer ones that did not.

    Attributes:
        path: the checkpoint used.
        state: its content (:func:`load_checkpoint`).
        skipped: newer checkpoints that could not be used, newest first, each with why
            (a phrase without the path).
    """

    path: Path
    state: dict[str, Any]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        """One line per skipped checkpoint, and one when the used one had no checksum."""
        lines = [
            f"skipped the newer checkpoint {p} ({reason}); using {self.path.name}"
            for p, reason in self.skipped
        ]
        note = checkpoint_note(self.path, self.state)
        return lines + ([note] if note else [])


def load_newest_checkpoint(
    source: str | Path, map_location: str | torch.device = "cpu"
) -> FoundCheckpoint:
    """The newest usable checkpoint of a run folder (or a folder of checkpoints).

    Truncated or damaged newer checkpoints (a crash, a full disk, a bad sector) are skipped
    in favour of the previous good one; ``skipped`` says which and why. A file is loaded as
    it is, without fallback.

    Raises:
        UserError: no checkpoint there, or none of them loads (naming the newest and why).
    """
    src = Path(source)
    if not src.exists():
        raise UserError(f"not found: {src} (give a run folder or a checkpoint file)")
    if src.is_file():
        return FoundCheckpoint(src, load_checkpoint(src, map_location))
    ckpts = list_checkpoints(src / "checkpoints") or list_checkpoints(src)
    if not ckpts:
        raise UserError(f"no checkpoint found in {src} (expected {src}/checkpoints/ckpt-*.pt)")
    skipped: list[tuple[Path, str]] = []
    for path in reversed(ckpts):
        try:
            return FoundCheckpoint(path, load_checkpoint(path, map_location), skipped)
        except CheckpointError as exc:
            skipped.append((path, exc.reason))
    newest, reason = skipped[0]
    raise UserError(
        f"none of the {len(ckpts)} checkpoints in {newest.parent} can be used (newest, "
        f"{newest.name}: {reason}); start a new run or restore a copy"
    )


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
