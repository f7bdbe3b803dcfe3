"""Format check: warns when real and fake differ in storage, silent when they match."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_lab.data.detection import DetectionSample
from deepfake_lab.data.format_check import check_formats, estimate_jpeg_quality


def save_set(
    folder: Path, n: int, fmt: str, size: int = 32, seed: int = 0, **options: object
) -> list[Path]:
    """``n`` smooth images saved as ``fmt`` ("JPEG"/"PNG") with PIL ``options``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    suffix = ".jpg" if fmt == "JPEG" else ".png"
    paths = []
    for i in range(n):
        img = rng.uniform(0, 255, 3) * xx[..., None] + rng.uniform(0, 255, 3) * yy[..., None]
        path = folder / f"{i:03d}{suffix}"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, fmt, **options)
        paths.append(path)
    return paths


def labelled(real: list[Path], fake: list[Path]) -> list[DetectionSample]:
    return [DetectionSample(p, 0, "real") for p in real] + [
        DetectionSample(p, 1, "gen") for p in fake
    ]


def test_jpeg_real_vs_png_fake_warns_with_numbers(tmp_path: Path) -> None:
    real = save_set(tmp_path / "real", 6, "JPEG", quality=92)
    fake = save_set(tmp_path / "fake", 6, "PNG", seed=1)
    warnings = check_formats(labelled(real, fake))
    assert len(warnings) == 1, warnings
    text = warnings[0]
    assert "real images are 100% JPEG (quality ~92)" in text
    assert "fake images 100% PNG" in text
    assert "data.reencode=jpeg95" in text


def test_mixed_formats_show_shares(tmp_path: Path) -> None:
    real = save_set(tmp_path / "real", 4, "PNG")
    fake = save_set(tmp_path / "fj", 3, "JPEG", quality=75) + save_set(tmp_path / "fp", 1, "PNG")
    (warning,) = check_formats(labelled(real, fake))
    assert "real images are 100% PNG, fake images 75% JPEG (quality ~75), 25% PNG" in warning


def test_different_jpeg_quality_warns(tmp_path: Path) -> None:
    real = save_set(tmp_path / "real", 5, "JPEG", quality=95)
    fake = save_set(tmp_path / "fake", 5, "JPEG", seed=1, quality=50)
    warnings = check_formats(labelled(real, fake))
    assert len(warnings) == 1, warnings
    assert "real JPEGs (5) have quality ~95, fake JPEGs (5) quality ~50" in warnings[0]
    assert "compression level" in warnings[0]


def test_same_quality_different_tables_warns(tmp_path: Path) -> None:
    real = save_set(tmp_path / "real", 4, "JPEG", quality=90)
    # Same luma table as q90, but a flat chroma table: another encoder's choice.
    with Image.open(real[0]) as im:
        tables = {0: list(im.quantization[0]), 1: [10] * 64}
    fake = save_set(tmp_path / "fake", 4, "JPEG", seed=1, qtables=tables)
    warnings = check_formats(labelled(real, fake))
    assert any("different quantisation tables" in w and "0% of real" in w for w in warnings)


def test_chroma_subsampling_difference_warns(tmp_path: Path) -> None:
    real = save_set(tmp_path / "real", 4, "JPEG", quality=90, subsampling=0)
    fake = save_set(tmp_path / "fake", 4, "JPEG", seed=1, quality=90, subsampling=2)
    (warning,) = check_formats(labelled(real, fake))
    assert "100% 4:4:4" in warning and "100% 4:2:0" in warning


def test_size_difference_warns(tmp_path: Path) -> None:
    real = save_set(tmp_path / "real", 4, "PNG", size=128)
    fake = save_set(tmp_path / "fake", 4, "PNG", size=32, seed=1)
    (warning,) = check_formats(labelled(real, fake))
    assert "mostly 128x128 (100%; median short side 128 px)" in warning
    assert "mostly 32x32" in warning


@pytest.mark.parametrize(
    "options",
    [{"fmt": "JPEG", "quality": 90}, {"fmt": "PNG"}],
    ids=["jpeg90", "png"],
)
def test_matching_sets_are_silent(tmp_path: Path, options: dict) -> None:
    opts = dict(options)
    fmt = opts.pop("fmt")
    real = save_set(tmp_path / "real", 5, fmt, **opts)
    fake = save_set(tmp_path / "fake", 5, fmt, seed=1, **opts)
    assert check_formats(labelled(real, fake)) == []


def test_small_differences_are_silent(tmp_path: Path) -> None:
    # Sizes within half an octave, the same qualities mixed alike: nothing to learn.
    real = save_set(tmp_path / "r1", 5, "JPEG", size=64, quality=90) + save_set(
        tmp_path / "r2", 5, "JPEG", size=64, seed=2, quality=80
    )
    fake = save_set(tmp_path / "f1", 5, "JPEG", size=60, seed=1, quality=90) + save_set(
        tmp_path / "f2", 5, "JPEG", size=60, seed=3, quality=80
    )
    assert check_formats(labelled(real, fake)) == []


def test_unreadable_and_one_class_only(tmp_path: Path) -> None:
    real = save_set(tmp_path / "real", 3, "PNG")
    fake = save_set(tmp_path / "fake", 3, "PNG", seed=1)
    bad = tmp_path / "fake" / "bad.png"
    bad.write_bytes(b"junk")
    assert check_formats(labelled(real, [*fake, bad])) == []
    assert check_formats(labelled(real, [])) == []


@pytest.mark.parametrize("quality", [20, 50, 75, 90, 95, 100])
def test_estimate_jpeg_quality_is_exact_for_pil(quality: int) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 60, 30)).save(buf, "JPEG", quality=quality)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        assert estimate_jpeg_quality(im.quantization) == quality


def test_sampling_is_capped(tmp_path: Path) -> None:
    real = save_set(tmp_path / "real", 6, "JPEG", quality=95)
    fake = save_set(tmp_path / "fake", 6, "JPEG", seed=1, quality=50)
    (warning,) = check_formats(labelled(real, fake), max_per_class=3)
    assert "real JPEGs (3)" in warning and "fake JPEGs (3)" in warning
