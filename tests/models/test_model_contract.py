"""The contract every registered generator/discriminator must meet (so a new architecture is
tested by registering it)."""

from __future__ import annotations

import copy

import pytest
import torch

from deepfake_lab.errors import UserError
from deepfake_lab.losses.gan import r1_penalty
from deepfake_lab.models import (
    DISCRIMINATORS,
    GENERATORS,
    Discriminator,
    Generator,
    build_discriminator,
    build_generator,
)

TINY = {"channels": 4, "max_channels": 16}
Z_DIM = 8
SIZES = [16, 32]


def test_both_architectures_are_registered():
    assert {"dcgan", "fastgan"} <= set(GENERATORS.names())
    assert {"dcgan", "fastgan"} <= set(DISCRIMINATORS.names())


def _assert_all_grads_finite_nonzero(module: torch.nn.Module) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("arch", GENERATORS.names())
def test_generator_contract(arch: str, size: int) -> None:
    torch.manual_seed(0)
    g = build_generator(arch, size=size, z_dim=Z_DIM, **TINY)
    assert isinstance(g, Generator)
    assert (g.size, g.z_dim) == (size, Z_DIM)
    z = torch.randn(4, Z_DIM)
    x = g(z)
    assert x.shape == (4, 3, size, size)
    assert x.min() >= -1 and x.max() <= 1
    # A random projection, not a plain sum: BatchNorm makes some sums constant.
    loss = (x * torch.randn_like(x)).sum()
    # Autoencoders (vae) train their encoder through autoencode(); the rest return None.
    ae = g.autoencode(torch.rand(4, 3, size, size) * 2 - 1, torch.Generator().manual_seed(0))
    if ae is not None:
        recon, kl = ae
        assert recon.shape == x.shape and kl.shape == (4,) and bool((kl >= 0).all())
        loss = loss + (recon * torch.randn_like(recon)).sum() + kl.sum()
    loss.backward()
    _assert_all_grads_finite_nonzero(g)

    g.eval()
    with torch.no_grad():
        out = g(z)
        assert torch.equal(out, g(z)), "eval-mode output must be deterministic"
        fresh = GENERATORS.build(g.registry_name, **g.init_kwargs).eval()
        assert not torch.equal(fresh(z), out)  # the round trip below is not trivially true
        fresh.load_state_dict(g.state_dict())
        assert torch.equal(fresh(z), out)
        assert torch.equal(copy.deepcopy(g)(z), out)  # the trainer's EMA copy


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("arch", DISCRIMINATORS.names())
def test_discriminator_contract(arch: str, size: int) -> None:
    torch.manual_seed(0)
    d = build_discriminator(arch, size=size, **TINY)
    assert isinstance(d, Discriminator)
    assert d.size == size
    x = torch.rand(4, 3, size, size) * 2 - 1
    logits = d(x)
    assert logits.shape == (4,)
    assert torch.isfinite(logits).all()

    # The logits reach some parameters; the auxiliary loss (if any) must reach the rest.
    (logits * torch.randn(4)).sum().backward()
    from_logits = {n for n, p in d.named_parameters() if p.grad is not None}
    assert from_logits
    d.zero_grad(set_to_none=True)

    rng_before = torch.get_rng_state()
    real_logits, aux = d.forward_real(x, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), rng_before), "forward_real used the global RNG"
    d.eval()
    assert torch.allclose(d.forward_real(x, torch.Generator())[0], d(x), atol=1e-6)
    d.train()
    if aux is not None:
        assert aux.shape == () and torch.isfinite(aux)
        aux.backward()
        from_aux = {n for n, p in d.named_parameters() if p.grad is not None}
        assert from_aux & from_logits, "the auxiliary loss must shape the shared trunk"

    # Together they reach every parameter, with finite gradients.
    d.zero_grad(set_to_none=True)
    logits, aux = d.forward_real(x, torch.Generator().manual_seed(0))
    loss = (logits * torch.randn(4)).sum()
    (loss if aux is None else loss + aux).backward()
    _assert_all_grads_finite_nonzero(d)

    # R1 differentiates through D twice: every layer must support double backward.
    d.zero_grad(set_to_none=True)
    x_r1 = x.clone().requires_grad_(True)
    r1 = r1_penalty(d(x_r1), x_r1)
    assert torch.isfinite(r1) and r1 > 0
    r1.backward()
    assert all(torch.isfinite(p.grad).all() for p in d.parameters() if p.grad is not None)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())

    d.eval()
    with torch.no_grad():
        out = d(x)
        fresh = DISCRIMINATORS.build(d.registry_name, **d.init_kwargs).eval()
        assert not torch.equal(fresh(x), out)
        fresh.load_state_dict(d.state_dict())
        assert torch.equal(fresh(x), out)


@pytest.mark.parametrize("arch", GENERATORS.names())
@pytest.mark.parametrize("size", [0, 8, 24, 48, 512, 64.0, "64", True])
def test_invalid_size_is_a_user_error(arch: str, size: object) -> None:
    with pytest.raises(UserError, match=f"{arch} supports image sizes"):
        build_generator(arch, size=size, **TINY)
    with pytest.raises(UserError, match=f"{arch} supports image sizes"):
        build_discriminator(arch, size=size, **TINY)


@pytest.mark.parametrize("arch", GENERATORS.names())
def test_invalid_width_is_a_user_error(arch: str) -> None:
    with pytest.raises(UserError, match="channels"):
        build_generator(arch, size=16, channels=0)
    with pytest.raises(UserError, match="z_dim"):
        build_generator(arch, size=16, z_dim=-1)
    with pytest.raises(UserError, match="max_channels"):
        build_discriminator(arch, size=16, max_channels=0)


def test_unknown_architecture_is_a_user_error() -> None:
    with pytest.raises(UserError, match="dcgan, fastgan"):
        build_generator("stylegan9", size=64)
