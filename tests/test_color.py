"""``color.luma``: BT.601 weights, the same values in bands as at once, bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np

from deepfake_lab import color


def test_luma_of_primaries_is_the_bt601_weights() -> None:
    rgb = np.eye(3, dtype=np.uint8)[None] * 255  # (1, 3, 3): red, green, blue pixels
    assert np.allclose(color.luma(rgb)[0], np.array(color.LUMA_WEIGHTS) * 255)


def test_banded_luma_equals_the_whole_image_at_once(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 65536, (97, 61, 3), dtype=np.uint16)  # 16-bit, odd sizes
    whole = img.astype(np.float64) @ np.asarray(color.LUMA_WEIGHTS)
    monkeypatch.setattr(color, "LUMA_CHUNK_PIXELS", 500)  # ~8 rows a band
    assert np.array_equal(color.luma(img), whole)


def test_luma_of_a_large_image_needs_no_float64_copy_of_it(monkeypatch) -> None:
    """A whole-image float64 copy costs 24 bytes a pixel on top of the result's 8 (the 2.5-3.8
    GB `verify` took on large 16-bit PNGs); in bands the peak stays near the result."""
    monkeypatch.setattr(color, "LUMA_CHUNK_PIXELS", 50_000)
    img = np.zeros((1000, 1000, 3), np.uint16)
    tracemalloc.start()
    try:
        color.luma(img)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak / img[..., 0].size < 12  # bytes a pixel: 8 for the result, + one band
