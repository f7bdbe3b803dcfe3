"""FastGAN specifics: skip-layer excitation, spectral norm, noise, reconstruction decoders."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from deepfake_lab.models import build_discriminator, build_generator
from deepfake_lab.models.discriminators.fastgan import take_quadrant
from deepfake_lab.models.layers import NoiseInjection

TINY = {"channels": 2, "max_channels": 16}


def test_skip_layer_excitation_follows_the_paper_pairs():
    assert list(build_generator("fastgan", size=32, **TINY).sles) == []
    assert list(build_generator("fastgan", size=64, **TINY).sles) == ["sle4to64"]
    assert list(build_generator("fastgan", size=256, **TINY).sles) == [
        "sle4to64",
        "sle8to128",
        "sle16to256",
    ]
    assert list(build_discriminator("fastgan", size=32, **TINY).sles) == []
    assert list(build_discriminator("fastgan", size=256, **TINY).sles) == [
        "sle256to32",
        "sle128to16",
        "sle64to8",
    ]


def test_sle_gets_gradients_at_64px():
    torch.manual_seed(0)
    g = build_generator("fastgan", size=64, z_dim=8, **TINY)
    x = g(torch.randn(2, 8))
    (x * torch.randn_like(x)).sum().backward()
    d = build_discriminator("fastgan", size=64, **TINY)
    (d(x.detach()) * torch.randn(2)).sum().backward()
    for name, p in [*g.sles.named_parameters(), *d.sles.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_every_conv_is_spectral_normalised():
    for model in (
        build_generator("fastgan", size=64, **TINY),
        build_discriminator("fastgan", size=64, **TINY),
    ):
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
        assert convs
        assert all(parametrize.is_parametrized(c, "weight") for c in convs)


def test_noise_is_random_in_training_and_fixed_in_eval():
    torch.manual_seed(0)
    g = build_generator("fastgan", size=16, z_dim=8, **TINY)
    noise_layers = [m for m in g.modules() if isinstance(m, NoiseInjection)]
    assert noise_layers
    with torch.no_grad():
        for m in noise_layers:
            m.weight.fill_(0.5)  # zero at init, which would hide the noise
        z = torch.randn(3, 8)
        assert not torch.equal(g(z), g(z))
        g.eval()
        assert torch.equal(g(z), g(z))


def test_take_quadrant():
    x = torch.arange(2 * 1 * 4 * 4).view(2, 1, 4, 4)
    out = take_quadrant(x, torch.tensor([1, 2]))
    assert torch.equal(out[0, 0], x[0, 0, :2, 2:])  # top-right of sample 0
    assert torch.equal(out[1, 0], x[1, 0, 2:, :2])  # bottom-left of sample 1


def test_aux_loss_is_seeded_by_the_generator():
    torch.manual_seed(0)
    d = build_discriminator("fastgan", size=32, **TINY).eval()  # eval: no power-iteration drift
    x = torch.rand(8, 3, 32, 32) * 2 - 1

    def aux(seed: int) -> torch.Tensor:
        return d.forward_real(x, torch.Generator().manual_seed(seed))[1]

    with torch.no_grad():
        assert torch.equal(aux(1), aux(1))
        assert not torch.equal(aux(1), aux(2))  # different quadrants


def test_reconstruction_decoders_learn():
    """A few steps on the auxiliary loss alone reduce it: the targets and crops line up."""
    torch.manual_seed(0)
    d = build_discriminator("fastgan", size=16, channels=8, max_channels=32)
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    opt = torch.optim.Adam(d.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        loss = d.forward_real(x, gen)[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
