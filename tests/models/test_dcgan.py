"""DCGAN matches the PyTorch DCGAN example (github.com/pytorch/examples, dcgan/main.py)."""

from __future__ import annotations

import torch
from torch import nn

from deepfake_lab.models import build_discriminator, build_generator
from reference_dcgan import reference_discriminator, reference_generator  # bench/, on pythonpath


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def shapes(m: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(p.shape) for p in m.parameters()]


def test_generator_is_the_pytorch_example_at_64px():
    ours = build_generator("dcgan", size=64, z_dim=100, channels=64)
    ref = reference_generator()
    assert n_params(ref) == 3_576_704
    assert n_params(ours) == 3_576_704
    assert shapes(ours) == shapes(ref)
    # Same weights -> same images (the architecture, not just the parameter count, matches).
    ours.load_state_dict(dict(zip(ours.state_dict(), ref.state_dict().values(), strict=True)))
    z = torch.randn(2, 100)
    ours.eval(), ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(z), ref(z.view(2, 100, 1, 1)))


def test_discriminator_is_the_pytorch_example_at_64px():
    ours = build_discriminator("dcgan", size=64, channels=64)
    ref = reference_discriminator()
    assert n_params(ref) == 2_765_568
    assert n_params(ours) == 2_765_568
    assert shapes(ours) == shapes(ref)
    ours.load_state_dict(dict(zip(ours.state_dict(), ref.state_dict().values(), strict=True)))
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    ours.eval(), ref.eval()
    with torch.no_grad():  # ours returns logits; the example applies a sigmoid
        torch.testing.assert_close(torch.sigmoid(ours(x)), ref(x).view(-1))


def test_dcgan_init_is_normal_0_02():
    torch.manual_seed(0)
    g = build_generator("dcgan", size=64)
    w = g.main[3].weight  # a 512 -> 256 transposed conv: 2M samples
    assert abs(w.mean().item()) < 1e-3
    assert abs(w.std().item() - 0.02) < 1e-3
    bn = g.main[1].weight
    assert abs(bn.mean().item() - 1.0) < 0.01


def test_widths_halve_and_are_capped():
    g = build_generator("dcgan", size=128, channels=64, max_channels=512)
    convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [512, 512, 256, 128, 64, 3]
    d = build_discriminator("dcgan", size=16, channels=8)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 1]
