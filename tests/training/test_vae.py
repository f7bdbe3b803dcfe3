"""``train gan --arch vae``: the VAE-GAN's ELBO terms, perceptual terms, and what it learns."""

from __future__ import annotations

import json

import pytest
import torch

from deepfake_lab.errors import UserError
from deepfake_lab.runs.checkpoint import load_checkpoint
from tiny_configs import train_tiny_gan


def _train(tmp_path, data, name, kimg, extra=(), arch="vae"):
    return train_tiny_gan(tmp_path, data, name, kimg, arch, extra)


def _metrics(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_vae_logs_its_elbo_terms_and_learns_to_reconstruct(tmp_path, tiny_faces):
    from deepfake_lab.data.dataset import FaceDataset
    from deepfake_lab.models.generators.loading import load_generator

    res = _train(tmp_path, tiny_faces, "vae", 0.4, ["loss.vae.adversarial=0.01"])
    rows = _metrics(res.run_dir)
    assert {"Loss/recon_L1", "Loss/KL", "Loss/G_adv"} <= set(rows[-1])
    assert rows[-1]["Loss/recon_L1"] < rows[0]["Loss/recon_L1"]  # it learns to reconstruct
    g = load_generator(res.checkpoint).model
    x = FaceDataset.from_folder(tiny_faces, 16).batch(torch.arange(8), torch.device("cpu"))
    untrained = torch.nn.functional.l1_loss(torch.zeros_like(x), x)
    assert torch.nn.functional.l1_loss(g.reconstruct(x), x) < untrained


def test_perceptual_term_on_reconstructions_and_as_feature_matching(tmp_path, tiny_faces):
    vae = _train(tmp_path, tiny_faces, "p", 0.016, ["loss.perceptual.net=discriminator"])
    assert "Loss/perceptual" in _metrics(vae.run_dir)[-1]
    fm = _train(
        tmp_path, tiny_faces, "fm", 0.016, ["loss.perceptual.net=discriminator"], arch="dcgan"
    )
    row = _metrics(fm.run_dir)[-1]
    assert "Loss/feature_matching" in row and "Loss/recon_L1" not in row
    assert load_checkpoint(fm.checkpoint)["config"]["loss"]["perceptual"]["net"] == (
        "discriminator"
    )


def test_bad_perceptual_settings_fail_before_training(tmp_path, tiny_faces):
    with pytest.raises(UserError, match="unknown network 'vgg'"):
        _train(tmp_path, tiny_faces, "x", 0.008, ["loss.perceptual.net=vgg"])
    with pytest.raises(UserError, match="needs loss.perceptual.weights"):
        _train(tmp_path, tiny_faces, "x", 0.008, ["loss.perceptual.net=vgg16"])
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
