"""Shared fixtures: tiny datasets and the path of the read-only shared data, when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _few_threads():
    # Tests use tiny models; more threads only add overhead and non-repeatable timing.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with a clear reason when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p} (read-only inputs beside the checkout)")
    return p


@pytest.fixture
def tiny_faces(tmp_path: Path) -> Path:
    """A folder of 24 random-ish 16 px RGB PNGs (smooth blobs, so not pure noise)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "faces"
    folder.mkdir()
    yy, xx = np.mgrid[0:16, 0:16]
    for i in range(24):
        cx, cy = rng.uniform(4, 12, size=2)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / rng.uniform(6, 20))
        colour = rng.uniform(0, 255, size=3)
        img = blob[..., None] * colour + (1 - blob[..., None]) * rng.uniform(0, 255, 3)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return folder
