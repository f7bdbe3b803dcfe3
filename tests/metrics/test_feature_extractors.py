from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_path
from deepfake_lab.errors import UserError
from deepfake_lab.metrics.features import FEATURE_EXTRACTORS
from deepfake_lab.metrics.frechet import feature_stats, frechet_distance

WEIGHTS = {"resnet56-cifar": "resnet56-4bfd9763.th", "resnet20-cifar": "resnet20-12fca82f.th"}


def _weights(name: str) -> Path:
    """The shared CIFAR ResNet weights of ``name`` (skips the test when they are absent)."""
    return shared_path("models", WEIGHTS[name])


@pytest.fixture(scope="module")
def r56():
    return FEATURE_EXTRACTORS.build("resnet56-cifar", weights=_weights("resnet56-cifar"))


@pytest.fixture(scope="module")
def ffhq():
    files = sorted(shared_path("data", "ffhq-128").glob("*.png"))
    assert len(files) >= 400
    arr = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files[:400]])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_registry_names_and_labels():
    assert {"resnet20-cifar", "resnet56-cifar"} <= set(FEATURE_EXTRACTORS.names())
    for name, label in {"resnet56-cifar": "FD-R56", "resnet20-cifar": "FD-R20"}.items():
        cls = FEATURE_EXTRACTORS.get(name)
        assert cls.name == name and cls.dim == 64 and cls.label == label


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_missing_weights_is_a_user_error(tmp_path, name):
    with pytest.raises(UserError) as err:
        FEATURE_EXTRACTORS.build(name, weights=tmp_path / WEIGHTS[name])
    msg = str(err.value)
    assert WEIGHTS[name] in msg and "akamaster/pytorch_resnet_cifar10" in msg and "\n" not in msg


def test_wrong_file_is_a_user_error(tmp_path):
    bad = tmp_path / "resnet56-4bfd9763.th"
    bad.write_bytes(b"not the weights")
    with pytest.raises(UserError, match="sha256"):
        FEATURE_EXTRACTORS.build("resnet56-cifar", weights=bad)


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_loads_shared_weights_and_is_deterministic(name):
    fx = FEATURE_EXTRACTORS.build(name, weights=_weights(name))
    assert fx.registry_name == name
    bns = [m for m in fx.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == {"resnet20-cifar": 19, "resnet56-cifar": 55}[name]
    for bn in bns:  # trained statistics, not the 0/1 defaults of a fresh layer
        assert bn.running_mean.abs().max() > 1e-3 and (bn.running_var - 1).abs().max() > 1e-2
    x = torch.rand(6, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fx.train()  # must stay in eval mode: features may not depend on the rest of the batch
    f = fx.features(x)
    assert f.shape == (6, 64) and f.dtype == torch.float32 and not f.requires_grad
    assert torch.equal(f, fx.features(x))
    torch.testing.assert_close(fx.features(x[:2]), f[:2], atol=1e-5, rtol=1e-5)
    assert (f >= 0).all()  # pooled after ReLU
    assert fx.logits(x).shape == (6, 10)
    with pytest.raises(ValueError):
        fx.features(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))


def test_batchnorm_statistics_fit_natural_images(r56, ffhq):
    """A wiring check: with the right layers, shortcuts and input normalisation, activations
    of natural images at every BN layer have roughly the statistics the layer was trained on.
    (A shortcut that zero-pads on one side only roughly quadruples the mismatch.)"""
    ratios = []

    def hook(mod, inp, out):
        var = inp[0].var(dim=(0, 2, 3))
        ratios.append((var / (mod.running_var + mod.eps)).log().abs().mean().item())

    handles = [
        m.register_forward_hook(hook) for m in r56.modules() if isinstance(m, torch.nn.BatchNorm2d)
    ]
    try:
        r56.features(ffhq[:64])
    finally:
        for h in handles:
            h.remove()
    assert np.mean(ratios) < 0.4


def test_fd_r56_separates_real_halves_from_degraded_images(r56, ffhq):
    a, b = ffhq[:200], ffhq[200:]
    # blur (a 5x5 box) plus noise: the kind of damage a feature space must notice
    gen = torch.Generator().manual_seed(0)
    blurred = torch.nn.functional.avg_pool2d(b, 5, stride=1, padding=2, count_include_pad=False)
    degraded = (blurred + 0.2 * torch.randn(b.shape, generator=gen)).clamp(-1, 1)
    stats = [feature_stats(r56.features(x).numpy()) for x in (a, b, degraded)]
    fd_halves = frechet_distance(*stats[0], *stats[1])
    fd_degraded = frechet_distance(*stats[0], *stats[2])
    assert 0 < fd_halves < 0.5 * fd_degraded


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_features_and_logits_share_one_pass(name):
    fx = FEATURE_EXTRACTORS.build(name, weights=_weights(name))
    x = torch.rand(3, 3, 40, 40) * 2 - 1
    f, logits = fx.features_and_logits(x)
    assert torch.allclose(f, fx.features(x)) and torch.allclose(logits, fx.logits(x))
