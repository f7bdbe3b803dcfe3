import json

import numpy as np
import pytest
from PIL import Image

from deepfake_lab.data import procedural, procedural_draw
from deepfake_lab.data.procedural import render_faces, write_procedural_dataset
from deepfake_lab.errors import UserError


def test_shape_and_dtype():
    x = render_faces(3, size=32, seed=1)
    assert x.shape == (3, 32, 32, 3) and x.dtype == np.uint8
    assert render_faces(0).shape == (0, 64, 64, 3)
    with pytest.raises(ValueError):
        render_faces(2, size=8)


def test_deterministic_with_prefix_property():
    a = render_faces(10, seed=3)
    np.testing.assert_array_equal(a, render_faces(10, seed=3))
    np.testing.assert_array_equal(a[:5], render_faces(5, seed=3))
    assert not np.array_equal(a, render_faces(10, seed=4))


def test_variety():
    x = render_faces(48, seed=0).astype(np.float32)
    flat = x.reshape(len(x), -1)
    dist = np.abs(flat[:, None] - flat[None]).mean(-1)[np.triu_indices(len(x), 1)]
    assert dist.mean() > 40 and dist.min() > 5  # no two faces alike

    # coarse colour bins (64 levels per channel) at the top of the head (hair), a cheek
    # (skin, lit) and a corner (background)
    def bins(patch):
        return {tuple(c) for c in (patch.reshape(len(x), -1, 3).mean(1) // 64).astype(int)}

    assert len(bins(x[:, 7:10, 30:34])) >= 6
    assert len(bins(x[:, 1:4, 1:4])) >= 8
    cheek = x[:, 33:35, 22:25].reshape(len(x), -1, 3).mean(1) @ [0.299, 0.587, 0.114]
    assert len(set((cheek // 32).astype(int))) >= 4  # light to dark skin


def test_framing_matches_an_aligned_face_set():
    for i in range(200):
        f = procedural_draw.sample_face(np.random.default_rng([0, i]))
        assert abs(f.ey - 0.4) < 0.03 and abs(f.cx - 0.5) < 0.03
        assert 0.0 < f.top < f.ey < f.chin < 0.85


def test_anti_aliased_edges():
    # supersampled drawing leaves many in-between values, not a few flat colours
    x = render_faces(1, size=64, seed=5)[0]
    assert len(np.unique(x.reshape(-1, 3), axis=0)) > 1000


def test_writer_creates_pngs_and_manifest(tmp_path):
    out = write_procedural_dataset(tmp_path / "faces", num=6, size=32, seed=2)
    pngs = sorted((out / "images").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(6)]
    expected = render_faces(6, size=32, seed=2)
    for i, p in enumerate(pngs):
        with Image.open(p) as im:
            assert im.mode == "RGB" and im.size == (32, 32)
            np.testing.assert_array_equal(np.asarray(im), expected[i])
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"output": f"images/{i:06d}.png", "source": "procedural", "seed": 2, "index": i, "size": 32}
        for i in range(6)
    ]
    marker = json.loads((out / "procedural.json").read_text())
    assert marker["complete"] is True and marker["num"] == 6
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_writer_skips_a_complete_set_and_redraws_otherwise(tmp_path, monkeypatch):
    out = tmp_path / "faces"
    write_procedural_dataset(out, num=4, size=32)
    calls = []
    real = procedural._render_range
    monkeypatch.setattr(procedural, "_render_range", lambda *a: calls.append(a) or real(*a))
    write_procedural_dataset(out, num=4, size=32)
    assert calls == []  # same parameters: nothing redrawn
    write_procedural_dataset(out, num=2, size=32)
    assert calls and len(list((out / "images").glob("*.png"))) == 2  # stale files removed
    calls.clear()
    (out / "images" / "000001.png").unlink()  # damaged set: redrawn
    write_procedural_dataset(out, num=2, size=32)
    assert calls and (out / "images" / "000001.png").is_file()


def test_writer_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "manifest.jsonl").write_text("{}\n")
    with pytest.raises(UserError):
        write_procedural_dataset(tmp_path / "real", num=2)
    with pytest.raises(UserError):
        write_procedural_dataset(tmp_path / "x", num=-1)
