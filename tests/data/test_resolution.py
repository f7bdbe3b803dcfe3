"""Resolution history: a set whose classes were resized differently is refused."""

import numpy as np
import pytest
from PIL import Image

from deepfake_lab.data.detection import FAKE, REAL, DetectionSample
from deepfake_lab.data.resolution import check_resolution, resolution_history
from deepfake_lab.errors import UserError


def _write(folder, n, side, label, source):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(side)
    out = []
    for i in range(n):
        p = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(p)
        out.append(DetectionSample(p, label, source))
    return out


def test_upscaled_fakes_against_native_reals_are_refused_with_the_ways_out(tmp_path):
    samples = _write(tmp_path / "real", 6, 128, REAL, "real")
    samples += _write(tmp_path / "gan", 6, 64, FAKE, "gan")
    hist = resolution_history(samples, 128)
    assert hist.classes[FAKE].upscaled == 1.0 and hist.classes[REAL].upscaled == 0.0
    assert hist.floor_side == 64
    with pytest.raises(UserError) as err:
        check_resolution(samples, 128, "check")
    msg = str(err.value)
    assert "gan: native short side median 64 px" in msg
    assert "data.native_size=floor" in msg and "data.native_size=ignore" in msg
    _, warning = check_resolution(samples, 128, "floor")
    assert warning is not None and "resolution history" in warning


def test_same_history_passes_and_a_larger_size_sees_both_upscaled(tmp_path):
    samples = _write(tmp_path / "real", 4, 64, REAL, "real")
    samples += _write(tmp_path / "zoo", 4, 64, FAKE, "zoo")
    assert check_resolution(samples, 64, "check")[1] is None
    assert check_resolution(samples, 128, "check")[1] is None  # both upscaled alike
    # Reals downscaled from 256 and fakes native at 128: both at least the size, no history.
    big = _write(tmp_path / "big", 4, 256, REAL, "real") + _write(tmp_path / "f", 4, 128, FAKE, "f")
    assert check_resolution(big, 128, "check")[1] is None


def test_unreadable_headers_are_left_to_the_decoder(tmp_path):
    samples = _write(tmp_path / "real", 3, 32, REAL, "real") + _write(
        tmp_path / "f", 3, 32, FAKE, "f"
    )
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    hist = resolution_history([*samples, DetectionSample(bad, FAKE, "f")], 32)
    assert hist.classes[FAKE].n == 3
