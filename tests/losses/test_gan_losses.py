"""Adversarial losses on hand-computed logits, and R1 against analytic gradients."""

from __future__ import annotations

import math

import pytest
import torch

from deepfake_lab.errors import UserError
from deepfake_lab.losses.gan import GAN_LOSSES, r1_penalty


def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def test_registry():
    assert GAN_LOSSES.names() == ["hinge", "nonsat"]
    with pytest.raises(UserError, match="hinge, nonsat"):
        GAN_LOSSES.build("wgan")


def test_nonsaturating_values():
    loss = GAN_LOSSES.build("nonsat")
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([-1.0, 1.0, 3.0])
    expected_d = (softplus(-0.0) + softplus(-2.0)) / 2 + (
        softplus(-1.0) + softplus(1.0) + softplus(3.0)
    ) / 3
    assert loss.d_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    expected_g = (softplus(1.0) + softplus(-1.0) + softplus(-3.0)) / 3
    assert loss.g_loss(fake).item() == pytest.approx(expected_g, rel=1e-6)
    # Stable for large logits (softplus, not log(sigmoid)).
    assert loss.d_loss(torch.tensor([100.0]), torch.tensor([-100.0])).item() == pytest.approx(
        0.0, abs=1e-30
    )
    assert loss.g_loss(torch.tensor([-100.0])).item() == pytest.approx(100.0)


def test_hinge_values():
    loss = GAN_LOSSES.build("hinge")
    real, fake = torch.tensor([0.5, 2.0]), torch.tensor([-2.0, 0.5])
    # D: mean(relu(1 - [0.5, 2])) = 0.25, mean(relu(1 + [-2, 0.5])) = 0.75.
    assert loss.d_loss(real, fake).item() == pytest.approx(1.0)
    assert loss.g_loss(fake).item() == pytest.approx(0.75)  # -mean([-2, 0.5])


def test_losses_are_scalars_with_gradients():
    for name in GAN_LOSSES.names():
        loss = GAN_LOSSES.build(name)
        real = torch.randn(4, requires_grad=True)
        fake = torch.randn(4, requires_grad=True)
        d, g = loss.d_loss(real, fake), loss.g_loss(fake)
        assert d.shape == () and g.shape == ()
        torch.autograd.grad(d + g, [real, fake])


def test_r1_of_a_linear_discriminator_is_the_squared_weight_norm():
    torch.manual_seed(0)
    w = torch.randn(3, 4, 4, requires_grad=True)
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    logits = (x * w).sum(dim=(1, 2, 3))
    r1 = r1_penalty(logits, x)
    assert r1.item() == pytest.approx(w.square().sum().item(), rel=1e-6)
    # create_graph: the penalty is differentiable in D's weights (d||w||^2/dw = 2w).
    (grad_w,) = torch.autograd.grad(r1, w)
    torch.testing.assert_close(grad_w, 2 * w.detach())


def test_r1_is_the_per_sample_mean():
    x = torch.randn(6, 3, 2, 2, requires_grad=True)
    logits = x.square().sum(dim=(1, 2, 3))  # grad = 2x, ||2x_b||^2 = 4 ||x_b||^2
    expected = (4 * x.detach().square().sum(dim=(1, 2, 3))).mean()
    assert r1_penalty(logits, x).item() == pytest.approx(expected.item(), rel=1e-6)


def test_r1_needs_requires_grad():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(x.sum(1), x)
