import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_lab.pixels import to_uint8
from deepfake_lab.report.grid import make_grid, save_grid


def test_to_uint8_rounding_at_key_values():
    x = torch.tensor([-1.0, 0.0, 1.0, -2.0, 2.0, float("nan")]).view(1, 3, 1, 2)
    out = to_uint8(x)
    assert out.shape == (1, 1, 2, 3) and out.dtype == np.uint8
    # NHWC: channel c of pixel (0, w) is x[0, c, 0, w]
    flat = out[0, 0].T.reshape(-1)
    assert flat.tolist() == [0, 128, 255, 0, 255, 128]


def test_to_uint8_round_trips_dataset_pixels():
    p = torch.arange(256, dtype=torch.uint8).view(1, 1, 1, -1).expand(1, 3, 1, -1)
    x = p.float() / 127.5 - 1  # how datasets map pixels to [-1, 1]
    np.testing.assert_array_equal(to_uint8(x)[0, 0, :, 0], np.arange(256))


def test_make_grid_shape_padding_and_placement():
    imgs = np.zeros((5, 4, 6, 3), dtype=np.uint8)
    for i in range(5):
        imgs[i] = 10 * (i + 1)
    g = make_grid(imgs, nrow=3, padding=2)
    assert g.shape == (2 * (4 + 2) + 2, 3 * (6 + 2) + 2, 3) and g.dtype == np.uint8
    for i in range(5):
        r, c = divmod(i, 3)
        y, x = 2 + r * 6, 2 + c * 8
        assert (g[y : y + 4, x : x + 6] == 10 * (i + 1)).all()
    assert (g[:2] == 0).all() and (g[:, :2] == 0).all()  # outer border
    assert (g[2:6, 8:10] == 0).all()  # gap between cells
    assert (g[8:12, 18:24] == 0).all()  # the unused sixth cell


def test_make_grid_default_is_square_and_accepts_tensors():
    x = torch.zeros(9, 3, 8, 8)
    g = make_grid(x, padding=0)
    assert g.shape == (24, 24, 3)
    assert (g == 128).all()
    assert make_grid(np.zeros((2, 5, 5, 3), np.uint8), nrow=8, padding=1).shape == (7, 13, 3)


def test_make_grid_rejects_bad_input():
    with pytest.raises(ValueError):
        make_grid(np.zeros((0, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError):
        make_grid(np.zeros((2, 4, 4, 3), np.float32))


def test_save_grid_writes_png(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    p = save_grid(imgs, tmp_path / "sub" / "grid.png", nrow=2)
    with Image.open(p) as im:
        assert im.size == (2 * 10 + 2, 2 * 10 + 2) and im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), make_grid(imgs, nrow=2))
    assert [f.name for f in p.parent.iterdir()] == ["grid.png"]  # no temp files left
