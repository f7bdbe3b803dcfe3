"""Perceptual losses: each network's taps, the distance and feature matching, the weights
files they read (and refuse)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from conftest import shared_path
from deepfake_lab.errors import UserError
from deepfake_lab.losses.perceptual import PERCEPTUAL_NETS, VGG16_LAYERS, build_perceptual


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A randomly initialised VGG-16 ``features`` state dict, as torchvision names it."""
    torch.manual_seed(0)
    layers, c = [], 3
    for v in VGG16_LAYERS:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    state = {
        f"features.{k}": t.contiguous() for k, t in nn.Sequential(*layers).state_dict().items()
    }
    path = tmp_path_factory.mktemp("vgg") / "vgg16.safetensors"
    save_file(state, str(path))
    return path


def _images(seed: int, n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_registry_names_every_network() -> None:
    assert set(PERCEPTUAL_NETS.names()) == {
        "discriminator",
        "resnet56-cifar",
        "torchscript",
        "vgg16",
    }


def test_vgg16_distance_is_zero_for_equal_images_and_has_gradients(vgg_file) -> None:
    loss = build_perceptual("vgg16", vgg_file)
    x, y = _images(0), _images(1)
    assert len(loss._taps(x)) == 5
    assert loss.distance(x, x).item() == pytest.approx(0.0, abs=1e-6)
    y.requires_grad_(True)
    d = loss.distance(x, y)
    d.backward()
    assert d.item() > 0 and y.grad is not None and y.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in loss.parameters())  # the network never trains
    assert loss.distance(x, _images(2)).item() != pytest.approx(d.item())


def test_layers_pick_taps_and_a_bad_index_is_a_user_error(vgg_file) -> None:
    x, y = _images(0), _images(1)
    shallow = build_perceptual("vgg16", vgg_file, layers=[0])
    assert len(shallow._taps(x)) == 1 and shallow.distance(x, y).item() > 0
    with pytest.raises(UserError, match="the network has 5 taps"):
        build_perceptual("vgg16", vgg_file, layers=[7]).distance(x, y)


def test_weights_files_are_checked(tmp_path, vgg_file) -> None:
    with pytest.raises(UserError, match="not found"):
        build_perceptual("vgg16", tmp_path / "none.safetensors")
    wrong = tmp_path / "wrong.safetensors"
    save_file({"features.0.weight": torch.zeros(1)}, str(wrong))
    with pytest.raises(UserError, match="not a VGG-16 state dict"):
        build_perceptual("vgg16", wrong)

    class Boom:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    evil = tmp_path / "evil.pth"
    torch.save({"x": Boom()}, evil)
    with pytest.raises(UserError, match="cannot read"):
        build_perceptual("vgg16", evil)


def test_torchscript_network_needs_trust(tmp_path) -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 3, stride=2, padding=1)

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            h = torch.relu(self.a(x))
            return [h, torch.relu(self.b(h))]

    path = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(Two()), str(path))
    with pytest.raises(UserError, match="runs its code"):
        build_perceptual("torchscript", path)
    with pytest.warns(Warning, match="running the code"):
        loss = build_perceptual("torchscript", path, trust_torchscript=True)
    assert len(loss._taps(_images(0))) == 2 and loss.distance(_images(0), _images(1)) > 0


def test_feature_matching_compares_batch_means_through_the_discriminator() -> None:
    from deepfake_lab.models import build_discriminator

    D = build_discriminator("dcgan", size=16, channels=4, max_channels=8).eval()
    loss = build_perceptual("discriminator", discriminator=D)
    x = _images(0, n=4, size=16)
    assert loss.feature_matching(x, x).item() == pytest.approx(0.0, abs=1e-7)
    fake = _images(1, n=4, size=16).requires_grad_(True)
    fm = loss.feature_matching(x, fake)
    fm.backward()
    assert fm.item() > 0 and fake.grad.abs().sum() > 0
    with pytest.raises(UserError, match="needs the GAN's discriminator"):
        build_perceptual("discriminator")


def test_resnet56_taps_with_the_released_weights() -> None:
    weights = shared_path("models", "resnet56-4bfd9763.th")
    loss = build_perceptual("resnet56-cifar", weights)
    taps = loss._taps(_images(0))
    assert [t.shape[1] for t in taps] == [16, 16, 32, 64]
    assert loss.distance(_images(0), _images(0)).item() == pytest.approx(0.0, abs=1e-6)
    assert loss.distance(_images(0), _images(1)).item() > 0
