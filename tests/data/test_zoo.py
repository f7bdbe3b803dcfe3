"""The generator zoo (``deepfake-lab data zoo``): families, determinism, fingerprints, files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from deepfake_lab.cli.app import app
from deepfake_lab.data.detection import read_manifest
from deepfake_lab.data.procedural import render_faces
from deepfake_lab.data.zoo import build_zoo, family_names, select_families
from deepfake_lab.errors import UserError
from tiny_configs import tiny_generator_export

SIZE, NUM, STEPS = 32, 6, 12
runner = CliRunner()


def _reals(folder: Path, num: int = NUM, size: int = SIZE) -> Path:
    folder.mkdir(parents=True)
    for i, im in enumerate(render_faces(num, size, seed=0)):
        Image.fromarray(im).save(folder / f"{i:03d}.png")
    return folder


def _pixels(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))])


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> tuple[Path, Path, dict]:
    """Every family at 32 px from 6 procedural faces, 20 steps; (reals, out, zoo.json)."""
    root = tmp_path_factory.mktemp("zoo")
    real = _reals(root / "real")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the tests that compare with it run (conftest): CPU results
    try:  # are bit-identical at one thread count
        record = build_zoo(real, root / "out", size=SIZE, steps=STEPS, seed=0)
    finally:
        torch.set_num_threads(threads)
    return real, root / "out", record


def test_every_family_writes_one_image_per_real_at_the_size(zoo) -> None:
    real, out, record = zoo
    assert len(family_names()) == 16 and set(record["families"]) == set(family_names())
    for name in family_names():
        images = _pixels(out / name)
        assert images.shape == (NUM, SIZE, SIZE, 3), name
    assert record["reals"]["count"] == NUM
    assert [r["path"] for r in record["reals"]["files"]] == [f"{i:03d}.png" for i in range(NUM)]
    assert all(len(r["sha256"]) == 64 for r in record["reals"]["files"])
    assert record["params"]["size"] == SIZE and record["params"]["steps"] == STEPS
    assert record["version"] and "tconv" in record["families"]["tconv-bn-trained"]["architecture"]
    assert json.loads((out / "zoo.json").read_text()) == record
    preview = np.asarray(Image.open(out / "preview.png"))
    assert preview.shape[0] >= 17 * SIZE  # a row of reals and one per family


def test_same_seed_same_pixels_and_families_independent(zoo, tmp_path) -> None:
    real, out, _ = zoo
    some = "tconv-bn-trained,nearest-none-untrained"
    again = build_zoo(real, tmp_path / "again", families=some, size=SIZE, steps=STEPS, seed=0)
    assert list(again["families"]) == ["nearest-none-untrained", "tconv-bn-trained"]
    for name in again["families"]:
        # Built alone, each family gives exactly the pixels it gave among all 16.
        np.testing.assert_array_equal(_pixels(tmp_path / "again" / name), _pixels(out / name))
    other = build_zoo(real, tmp_path / "seed1", families=some, size=SIZE, steps=STEPS, seed=1)
    for name in other["families"]:
        assert not np.array_equal(_pixels(tmp_path / "seed1" / name), _pixels(out / name))


def test_families_differ(zoo) -> None:
    _, out, _ = zoo
    images = {name: _pixels(out / name).astype(float) for name in family_names()}
    for a in family_names():
        for b in family_names():
            if a < b:
                assert np.abs(images[a] - images[b]).mean() > 0.1, (a, b)


def _nyquist_share(real: Path, folder: Path) -> float:
    """Share of the residual's (image - real) power on the Nyquist lines of the spectrum:
    the period-2 pattern (checkerboard) that up-sampling leaves."""
    res = (_pixels(folder).astype(float) - _pixels(real).astype(float)).mean(-1)
    res -= res.mean(axis=(1, 2), keepdims=True)
    power = (np.abs(np.fft.fft2(res)) ** 2).mean(0)
    n = power.shape[0]
    return float((power[n // 2, :].sum() + power[:, n // 2].sum()) / power.sum())


def test_up_sampler_sets_the_spectrum(zoo) -> None:
    # A transposed convolution leaves a checkerboard, bilinear up-sampling nearly none: were
    # the up-sampler ignored, both families would be the same network up to its seed.
    real, out, _ = zoo
    # (Trained families show it too, but after a dozen steps too weakly for a firm bound.)
    for family in ("none-untrained", "bn-untrained"):
        tconv = _nyquist_share(real, out / f"tconv-{family}")
        bilinear = _nyquist_share(real, out / f"bilinear-{family}")
        assert tconv > 3 * bilinear, (family, tconv, bilinear)


def test_training_reconstructs(zoo) -> None:
    _, _, record = zoo
    fams = record["families"]
    for name, fam in fams.items():
        if fam["trained"]:
            untrained = fams[name.replace("-trained", "-untrained")]
            assert fam["recon_l1"] < untrained["recon_l1"], name
            assert fam["steps"] == STEPS
        else:
            # Untrained: the real face plus a small high-passed residual, about 37 dB.
            assert fam["steps"] == 0 and fam["loss_first"] is None
            assert 33 < fam["psnr_db"] < 40, name


def test_manifest_reads_as_detector_data(zoo) -> None:
    _, out, _ = zoo
    samples = read_manifest(out / "manifest.jsonl")
    assert len(samples) == 16 * NUM
    assert {s.label for s in samples} == {1}
    assert {s.source for s in samples} == set(family_names())
    # Images made from one real face share a group, so a split keeps them together.
    assert len({s.group for s in samples}) == NUM


def test_metadata_tag_but_no_pixel_watermark(zoo) -> None:
    from deepfake_lab.provenance.verify import verify_images

    _, out, record = zoo
    # The direct read (the images are untouched), and the full crop search on one of each.
    folders = [out / "tconv-bn-trained", out / "nearest-none-untrained"]
    results = verify_images(folders, search=False)
    results += verify_images([f / "00000.png" for f in folders], search=True)
    assert len(results) == 2 * NUM + 2
    for r in results:
        assert r["watermark"] is False, r["path"]
        assert r["metadata"]["ai_generated"] is True
        assert r["metadata"]["watermarked"] is False
    assert record["provenance"]["pixel_watermark"] is False
    assert "shortcut" in record["provenance"]["why"]


def test_rerun_skips_finished_families_and_refuses_other_parameters(zoo, tmp_path) -> None:
    real, _, _ = zoo
    out = tmp_path / "z"
    build_zoo(real, out, families="pixelshuffle-none-*", size=16, steps=2, preview=False)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    lines: list[str] = []
    rec = build_zoo(
        real, out, families="pixelshuffle-*", size=16, steps=2, preview=False, log=lines.append
    )
    assert sum("already complete" in line for line in lines) == 2
    assert len(rec["families"]) == 4
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    with pytest.raises(UserError, match="other parameters.*steps 2 -> 3"):
        build_zoo(real, out, families="pixelshuffle-*", size=16, steps=3)


def test_bad_reals_are_skipped_and_counted(tmp_path) -> None:
    real = _reals(tmp_path / "real", num=4, size=16)
    (real / "zz-broken.png").write_bytes(b"not a png")
    rec = build_zoo(real, tmp_path / "out", families="nearest-none-untrained", size=16)
    assert rec["reals"]["count"] == 4 and rec["reals"]["skipped"] == 1
    assert rec["reals"]["skipped_files"][0]["path"] == "zz-broken.png"
    few = build_zoo(real, tmp_path / "few", families="nearest-none-untrained", size=16, num=2)
    assert (
        few["reals"]["count"] == 2
        and len(list((tmp_path / "few" / "nearest-none-untrained").iterdir())) == 2
    )


def test_argument_errors(tmp_path) -> None:
    real = _reals(tmp_path / "real", num=2, size=16)
    with pytest.raises(UserError, match="unknown zoo family 'convt-\\*'; known: bilinear-bn"):
        select_families("convt-*")
    assert select_families("tconv-*,*-none-trained")[:2] == [
        "bilinear-none-trained",
        "nearest-none-trained",
    ]
    for kwargs, match in (
        ({"size": 24}, "multiple of 16"),
        ({"num": 0}, "--num"),
        ({"steps": 0}, "--steps"),
    ):
        with pytest.raises(UserError, match=match):
            build_zoo(real, tmp_path / "o", **kwargs)
    with pytest.raises(UserError, match="inside --real"):
        build_zoo(real, real / "zoo", size=16)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("mine")
    with pytest.raises(UserError, match="holds no zoo.json"):
        build_zoo(real, tmp_path / "full", size=16)
    assert not (tmp_path / "o").exists()


def test_gan_samples_resized_unmarked(tmp_path) -> None:
    from deepfake_lab.provenance.verify import verify_images

    real = _reals(tmp_path / "real", num=3, size=32)
    gan = tiny_generator_export(tmp_path / "tiny-gan", size=16)
    rec = build_zoo(real, tmp_path / "out", families="tconv-none-untrained", size=32, gans=[gan])
    g = rec["gans"]["gan-tiny-gan"]
    assert g["native_size"] == 16 and "upscaled from its native 16 px to 32 px" in g["resized"]
    assert _pixels(tmp_path / "out" / "gan-tiny-gan").shape == (3, 32, 32, 3)
    assert {s.source for s in read_manifest(tmp_path / "out" / "manifest.jsonl")} == {
        "tconv-none-untrained",
        "gan-tiny-gan",
    }
    for r in verify_images([tmp_path / "out" / "gan-tiny-gan"], search=False):
        assert r["watermark"] is False and r["metadata"]["ai_generated"] is True

    # --families none: the GAN's samples alone.
    only = build_zoo(real, tmp_path / "only", families="none", size=32, gans=[gan])
    assert only["families"] == {} and list(only["gans"]) == ["gan-tiny-gan"]
    assert {s.source for s in read_manifest(tmp_path / "only" / "manifest.jsonl")} == {
        "gan-tiny-gan"
    }
    with pytest.raises(UserError, match="builds nothing without a --gan"):
        build_zoo(real, tmp_path / "nothing", families="none", size=32)


def test_cli_end_to_end_and_bad_family(tmp_path) -> None:
    real = _reals(tmp_path / "real", num=4, size=16)
    out = tmp_path / "zoo"
    args = ["data", "zoo", "--real", str(real), "--out", str(out), "--size", "16"]
    result = runner.invoke(app, [*args, "--families", "tconv-*", "--steps", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "tconv-bn-trained" in result.output and "no pixel watermark" in result.output
    assert len(read_manifest(out / "manifest.jsonl")) == 4 * 4
    assert (out / "preview.png").is_file()

    bad = runner.invoke(app, [*args, "--families", "tconv-*,wavelet-bn-trained"])
    assert bad.exit_code == 2
    error = bad.stderr.strip()
    assert len(error.splitlines()) == 1, error
    assert error.startswith("error: unknown zoo family 'wavelet-bn-trained'; known: ")
    assert "tconv-none-untrained" in error and "Traceback" not in bad.output
