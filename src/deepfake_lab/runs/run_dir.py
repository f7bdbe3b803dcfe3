"""Run folders: ``runs/NNNNN-<name>/`` with a fixed layout, and finding what to resume."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from deepfake_lab.errors import UserError
from deepfake_lab.runs.checkpoint import checkpoint_nimg, list_checkpoints

_RUN = re.compile(r"^(\d{5})-(.+)$")


def _runs(out: Path) -> list[tuple[int, str, Path]]:
    if not out.is_dir():
        return []
    found = []
    for p in out.iterdir():
        if p.is_dir() and (m := _RUN.match(p.name)):
            found.append((int(m.group(1)), m.group(2), p))
    return sorted(found)


def create_run_dir(out: str | Path, name: str) -> Path:
    """Make ``out/NNNNN-name`` with the next free number (and its subfolders)."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise UserError(f"run name {name!r} may use only letters, digits, '.', '_' and '-'")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for run folders")
    out.mkdir(parents=True, exist_ok=True)
    number = max((n for n, _, _ in _runs(out)), default=-1) + 1
    while True:
        run = out / f"{number:05d}-{name}"
        try:
            run.mkdir()
            break
        except FileExistsError:  # another process took this number
            number += 1
    (run / "checkpoints").mkdir()
    (run / "samples").mkdir()
    return run


def latest_run(out: str | Path, name: str | None = None) -> Path | None:
    """The highest-numbered run in ``out`` that has a checkpoint (optionally of ``name``)."""
    for _, run_name, path in reversed(_runs(Path(out))):
        if (name is None or run_name == name) and list_checkpoints(path / "checkpoints"):
            return path
    return None


def resolve_checkpoint(source: str | Path) -> Path:
    """A checkpoint file from a run folder (its newest checkpoint) or a checkpoint path."""
    p = Path(source)
    if p.is_file():
        return p
    if p.is_dir():
        ckpts = list_checkpoints(p / "checkpoints") or list_checkpoints(p)
        if ckpts:
            return ckpts[-1]
        raise UserError(f"no checkpoint found in {p} (expected {p}/checkpoints/ckpt-*.pt)")
    raise UserError(f"not found: {p} (give a run folder or a checkpoint file)")


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run folder a checkpoint lives in, when it sits in ``<run>/checkpoints/``."""
    checkpoint = Path(checkpoint).resolve()
    if (
        checkpoint.parent.name == "checkpoints"
        and (checkpoint.parent.parent / "config.yaml").exists()
    ):
        return checkpoint.parent.parent
    return None


def set_aside_later_work(run_dir: Path, nimg: int) -> list[Path]:
    """Move checkpoints and sample grids made after ``nimg`` into ``abandoned/`` folders.

    Called when a run resumes from a checkpoint older than its newest: the later files
    belong to a timeline that is being replaced. They are kept (never deleted), but moved out
    of the way so that pruning, ``--resume auto``, ``generate RUN`` and the report only see
    the new timeline.

    Returns:
        The new paths of the moved files.
    """
    moved = []
    for folder, pattern in (("checkpoints", "ckpt-*.pt"), ("samples", "grid-*.png")):
        src = Path(run_dir) / folder
        for path in sorted(src.glob(pattern)):
            n = checkpoint_nimg(path)
            if n is not None and n > nimg:
                dest = src / "abandoned" / path.name
                dest.parent.mkdir(exist_ok=True)
                shutil.move(str(path), str(dest))
                moved.append(dest)
    return moved
