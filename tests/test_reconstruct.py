"""``deepfake-lab reconstruct``: VAE reconstructions, marked like every generated image."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from deepfake_lab.cli.app import app
from deepfake_lab.errors import UserError
from deepfake_lab.reconstruct import reconstruct_images
from deepfake_lab.training.launch import train_gan
from tiny_configs import GAN_TINY

runner = CliRunner()


def _train(tmp_path, data, arch):
    return train_gan(
        data,
        overrides=GAN_TINY,
        arch=arch,
        kimg=0.04,
        out=tmp_path / "runs",
        name=arch,
        progress=False,
        tensorboard=False,
    )


def test_reconstruct_writes_marked_pairs_and_errors(tmp_path, tiny_faces):
    from deepfake_lab.provenance.verify import verify_images

    run = _train(tmp_path, tiny_faces, "vae").run_dir
    (tiny_faces / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "rec"
    res = runner.invoke(app, ["reconstruct", str(run), str(tiny_faces), "--out", str(out)])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "reconstruct.json").read_text())
    assert len(m["images"]) == 24 and [s["source"] for s in m["skipped"]] == [
        str(tiny_faces / "broken.png")
    ]
    assert all(r["l1"] > 0 and r["psnr_db"] > 0 for r in m["images"])
    assert (out / "grid.png").is_file() and (out / m["images"][0]["file"]).is_file()
    (rec,) = verify_images([out / m["images"][0]["file"]], search=False)
    assert rec["metadata"]["ai_generated"]  # generated content, tagged as such
    assert "mean L1" in res.output


def test_reconstruct_needs_an_autoencoder(tmp_path, tiny_faces):
    run = _train(tmp_path, tiny_faces, "dcgan").run_dir
    with pytest.raises(UserError, match="no encoder"):
        reconstruct_images(run, [tiny_faces], tmp_path / "out")
    assert not (tmp_path / "out").exists()
