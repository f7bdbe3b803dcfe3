"""Shared fixtures: tiny datasets, the path of the read-only shared data when present, and
the check that a written figure shows its data."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
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


# --- figures ------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A pixel is data ink when it is coloured (max - min over RGB at least MIN_CHROMA: the white
# canvas, black and grey text, axes, grid and grey reference lines are not), differs from the
# same pixel of the figure drawn without data by more than DIFF_TOLERANCE, and belongs to a
# mark over MIN_MARK_EXTENT px across (a curve, a bar, a heatmap cell): the swatches of a
# legend (~25 px wide at fontsize "small") are no data.
MIN_CHROMA = 32
DIFF_TOLERANCE = 24
MIN_MARK_EXTENT = 40
# Enough data ink to count as "shows data": a 100 px stretch of a 2 px line.
MIN_DATA_PIXELS = 200


def read_png(path: Path) -> np.ndarray:
    """The (H, W, 3) uint8 pixels of a figure written as a PNG, after checking that it is one
    (signature, over 100 px each side) and that its atomic write left no temp file beside it."""
    from PIL import Image

    path = Path(path)
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert not list(path.parent.glob(f".{path.name}.*.tmp")), "the atomic write left a temp file"
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    assert arr.shape[0] > 100 and arr.shape[1] > 100, f"{path} is only {arr.shape[:2]} px"
    return arr


def figure_data_pixels(
    path: Path, draw_without_data: Callable[[Path], Path], min_extent: int = MIN_MARK_EXTENT
) -> int:
    """How many pixels of the figure at ``path`` are data ink: coloured, different in the same
    figure drawn again without its data, and part of a mark over ``min_extent`` px across.

    Args:
        path: the PNG under test.
        draw_without_data: draws the same figure (same function, options and series names,
            so the same canvas) with every data series emptied or NaN, to the path it is
            given, and returns that path.
        min_extent: marks (8-connected groups of data-ink pixels) whose bounding box is
            at most this wide and tall do not count; 0 counts every pixel.
    """
    from scipy import ndimage

    picture = read_png(path).astype(np.int16)
    with tempfile.TemporaryDirectory() as tmp:
        empty = read_png(draw_without_data(Path(tmp) / "without-data.png")).astype(np.int16)
    assert picture.shape == empty.shape, (
        f"drawn without data the figure is {empty.shape[:2]} px, not {picture.shape[:2]}: "
        "the redraw should keep the layout and drop only the data"
    )
    coloured = picture.max(axis=-1) - picture.min(axis=-1) >= MIN_CHROMA
    ink = coloured & (np.abs(picture - empty).max(axis=-1) > DIFF_TOLERANCE)
    if min_extent <= 0:
        return int(ink.sum())
    marks, _ = ndimage.label(ink, structure=np.ones((3, 3)))
    sizes = np.bincount(marks.ravel())
    return sum(
        int(sizes[i])
        for i, (rows, cols) in enumerate(ndimage.find_objects(marks), start=1)
        if max(rows.stop - rows.start, cols.stop - cols.start) > min_extent
    )


def assert_figure_shows_data(
    path: Path,
    draw_without_data: Callable[[Path], Path],
    min_pixels: int = MIN_DATA_PIXELS,
    min_extent: int = MIN_MARK_EXTENT,
) -> None:
    """Fail unless the PNG at ``path`` draws its data: at least ``min_pixels`` pixels of data
    ink (see ``figure_data_pixels``) against the same figure drawn without data. A figure whose
    data went missing, leaving axes, titles, "no data" notes or only a legend, fails.

    A figure whose data is a few single markers needs ``min_extent=0``: a marker is as small
    as a legend swatch, so there the check tells data from no data, not from a lone legend.
    """
    n = figure_data_pixels(path, draw_without_data, min_extent)
    assert n >= min_pixels, (
        f"{Path(path).name} hardly differs from the same figure without data: {n} data pixels "
        f"in marks over {min_extent} px across (want >= {min_pixels})"
    )


def assert_figure_shows_no_data(path: Path, draw_without_data: Callable[[Path], Path]) -> None:
    """Fail unless the PNG at ``path`` is a picture that draws nothing in colour that the same
    figure without data does not (degenerate input, which the figure reports in words)."""
    n = figure_data_pixels(path, draw_without_data, min_extent=0)
    assert n < MIN_DATA_PIXELS // 10, f"{Path(path).name} draws {n} data pixels for no data"


@pytest.fixture(scope="module")
def procedural_reals(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 procedural 32 px faces, aligned to the template like `data prepare` output."""
    from PIL import Image

    from deepfake_lab.data.procedural import render_faces

    folder = tmp_path_factory.mktemp("reals")
    for i, im in enumerate(render_faces(24, 32, seed=0)):
        Image.fromarray(im).save(folder / f"{i:03d}.png")
    return folder
