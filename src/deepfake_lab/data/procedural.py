"""A built-in, procedurally drawn cartoon face dataset (no licence burden, no downloads).

:func:`render_faces` draws faces in memory; :func:`write_procedural_dataset` writes them as a
dataset folder, once. The drawing itself is in :mod:`deepfake_lab.data.procedural_draw`.

Image ``i`` of seed ``s`` is drawn from ``numpy.random.default_rng([s, i])`` alone, so any
prefix of a set is the smaller set.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deepfake_lab.data.procedural_draw import GENERATOR_VERSION, render_one
from deepfake_lab.errors import UserError
from deepfake_lab.io import atomic_write_json, atomic_write_text, write_png

MARKER = "procedural.json"
_CHUNK = 256  # images rendered per batch when writing, to bound memory at large sizes

__all__ = ["GENERATOR_VERSION", "MARKER", "render_faces", "write_procedural_dataset"]


def _check(num: int, size: int, seed: int) -> None:
    if num < 0 or size < 16 or seed < 0:
        raise ValueError(f"need num >= 0, size >= 16 and seed >= 0; got {num}, {size}, {seed}")


def _render_range(start: int, stop: int, size: int, seed: int) -> np.ndarray:
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
    out = np.empty((max(stop - start, 0), size, size, 3), np.uint8)
    for j, i in enumerate(range(start, stop)):
        out[j] = render_one(np.random.default_rng([seed, i]), size, xx, yy)
    return out


def render_faces(num: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """Draw ``num`` cartoon faces.

    Args:
        num: how many images (>= 0).
        size: side in pixels (>= 16).
        seed: non-negative; image ``i`` depends only on ``(seed, i)``, so
            ``render_faces(10, seed=s)[:5]`` equals ``render_faces(5, seed=s)``.

    Returns:
        uint8 RGB array (num, size, size, 3).
    """
    _check(num, size, seed)
    return _render_range(0, num, size, seed)


def _is_complete(out: Path, params: dict) -> bool:
    try:
        marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
        lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError):
        return False
    if marker != {**params, "complete": True} or len(lines) != params["num"]:
        return False
    return all((out / "images" / f"{i:06d}.png").is_file() for i in range(params["num"]))


def write_procedural_dataset(out: Path, num: int, size: int = 64, seed: int = 0) -> Path:
    """Write ``num`` procedural faces as PNGs plus a manifest, unless already there.

    Layout: ``out/images/000000.png ...`` (written atomically), ``out/manifest.jsonl`` (one
    line per image: ``{"output": "images/000000.png", "source": "procedural", "seed": s,
    "index": i, "size": size}``) and ``out/procedural.json`` (the parameters, the drawing
    version and whether the set is complete). A folder holding the complete set for the
    same parameters is returned untouched; an interrupted or different one is redrawn.

    Args:
        out: the dataset folder: new, empty, or an earlier procedural set.
        num, size, seed: as in ``render_faces``.

    Returns:
        ``out``.

    Raises:
        UserError: bad parameters, or ``out`` holds something that is not ours.
    """
    out = Path(out)
    try:
        _check(num, size, seed)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    params = {"source": "procedural", "version": GENERATOR_VERSION}
    params |= {"num": num, "size": size, "seed": seed}
    if _is_complete(out, params):
        return out
    if out.exists() and not (out / MARKER).is_file() and (out.is_file() or any(out.iterdir())):
        # Never write into another dataset: its manifest.jsonl would be replaced.
        raise UserError(f"{out} exists and is not a procedural face dataset; pick a new folder")
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    # Mark the folder ours but incomplete first: a crash midway is redone, never trusted.
    atomic_write_json(out / MARKER, {**params, "complete": False})
    for stale in images.glob("[0-9][0-9][0-9][0-9][0-9][0-9].png"):  # from a larger set
        if int(stale.stem) >= num:
            stale.unlink()
    records = []
    for start in range(0, num, _CHUNK):
        batch = _render_range(start, min(start + _CHUNK, num), size, seed)
        for i, img in enumerate(batch, start):
            name = f"images/{i:06d}.png"
            write_png(out / name, img)
            records.append(
                {"output": name, "source": "procedural", "seed": seed, "index": i, "size": size}
            )
    atomic_write_text(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    atomic_write_json(out / MARKER, {**params, "complete": True})
    return out
