"""FGSM and PGD: stay in budget and range, raise the loss, are seeded, leave no parameter
gradients; attack_report measures a toy detector clean and attacked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepfake_lab.data.detection import DetectionDataset, DetectionSample
from deepfake_lab.models.detectors.loading import LoadedDetector
from deepfake_lab.training.adversarial import (
    attack_report,
    default_step_size,
    eps_on_model_scale,
    fgsm,
    pgd,
    sign_noise,
)

EPS = eps_on_model_scale(4 / 255)  # 8/255 on the [-1, 1] scale


class Toy(nn.Module):
    """conv -> BatchNorm -> ReLU -> mean -> linear: one logit per image, positive = fake."""

    def __init__(self) -> None:
        super().__init__()
        self.size = 8
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.bn(self.conv(x))).mean((2, 3))).squeeze(1)


def _toy_data(n: int = 128, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n, 3, 8, 8) images and labels: fakes carry a faint checkerboard (an up-sampling
    artefact in miniature), reals do not."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(60, 196, (n, 3, 8, 8), generator=g).float()
    y = torch.arange(n) % 2
    yy, xx = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    checker = ((yy + xx) % 2 * 2 - 1).float() * 24
    images = (base + y.view(-1, 1, 1, 1) * checker).clamp(0, 255).to(torch.uint8)
    return images, y


@pytest.fixture(scope="module")
def trained() -> tuple[Toy, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = Toy()
    images, y = _toy_data()
    x = images.float() / 127.5 - 1
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(model(x), y.float()).backward()
        opt.step()
    model.eval()
    opt.zero_grad(set_to_none=True)
    return model, x, y.float()


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return F.binary_cross_entropy_with_logits(model(x), y).item()


def test_eps_scale_is_exact() -> None:
    assert eps_on_model_scale(4 / 255) == pytest.approx(8 / 255)
    assert default_step_size(1.0, 10) == pytest.approx(0.25)


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_within_budget_and_range(trained, attack: str) -> None:
    model, x, y = trained
    x = x.clone()
    x[0] = 1.0  # saturated pixels: the attack must clamp, not step outside [-1, 1]
    x[1] = -1.0
    eps = 0.1
    x_adv = fgsm(model, x, y, eps) if attack == "fgsm" else pgd(model, x, y, eps, steps=5)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert (x_adv - x).abs().max().item() <= eps + 1e-6
    assert x_adv.min().item() >= -1.0 and x_adv.max().item() <= 1.0
    assert (x_adv != x).any()


def test_attacks_raise_the_loss_pgd_at_least_as_much(trained) -> None:
    model, x, y = trained
    clean = _loss(model, x, y)
    assert clean < 0.3  # the toy detector did learn the artefact
    l_fgsm = _loss(model, fgsm(model, x, y, EPS), y)
    l_pgd = _loss(model, pgd(model, x, y, EPS, steps=10), y)
    assert l_fgsm > clean
    assert l_pgd >= l_fgsm - 1e-4


def test_pgd_is_deterministic_for_a_seed(trained) -> None:
    model, x, y = trained
    a = pgd(model, x, y, EPS, steps=3, generator=torch.Generator().manual_seed(1))
    b = pgd(model, x, y, EPS, steps=3, generator=torch.Generator().manual_seed(1))
    c = pgd(model, x, y, EPS, steps=3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    state = torch.get_rng_state()
    pgd(model, x, y, EPS, steps=1)  # no generator: a fixed seed, not the global RNG
    assert torch.equal(state, torch.get_rng_state())


def test_no_parameter_gradients_eval_mode_and_bn_untouched() -> None:
    torch.manual_seed(0)
    model = Toy().train()
    images, y = _toy_data(16)
    x = images.float() / 127.5 - 1
    running = model.bn.running_mean.clone()
    for attack in (lambda: fgsm(model, x, y.float(), EPS), lambda: pgd(model, x, y, EPS)):
        attack()
        assert all(p.grad is None for p in model.parameters())
        assert model.training  # the caller's mode comes back
        assert torch.equal(model.bn.running_mean, running)  # crafted in eval mode


def test_evade_only_moves_fakes_and_matches_both_on_them(trained) -> None:
    model, x, y = trained
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    evade = pgd(model, x, y, EPS, steps=3, generator=gen(), target="evade")
    both = pgd(model, x, y, EPS, steps=3, generator=gen())
    real, fake = y == 0, y == 1
    assert torch.equal(evade[real], x[real])
    assert torch.allclose(evade[fake], both[fake])
    with torch.no_grad():  # fakes pushed towards "real": lower logits
        assert model(evade[fake]).mean() < model(x[fake]).mean()
    assert torch.equal(fgsm(model, x, y, EPS, target="evade")[real], x[real])
    noisy = sign_noise(x, y, EPS, torch.Generator().manual_seed(0), target="evade")
    assert torch.equal(noisy[real], x[real])
    assert (noisy[fake] - x[fake]).abs().max().item() <= EPS + 1e-6


def test_works_inside_no_grad_and_rejects_bad_input(trained) -> None:
    model, x, y = trained
    with torch.no_grad():
        assert not torch.equal(fgsm(model, x, y, EPS), x)
    with pytest.raises(ValueError, match="target"):
        fgsm(model, x, y, EPS, target="flip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps"):
        pgd(model, x, y, EPS, steps=0)


def test_attack_report(trained) -> None:
    model, _, _ = trained
    images, y = _toy_data(48, seed=1)  # held-out toy images
    data = DetectionDataset(
        images,
        y,
        [
            DetectionSample(Path(f"{i}.png"), int(v), "real" if v == 0 else "fake")
            for i, v in enumerate(y.tolist())
        ],
    )
    det = LoadedDetector(model.requires_grad_(False), logit_threshold=0.0)
    r = attack_report(det, data, "cpu", eps_list=(1, 4), steps=5, batch=20)
    model.requires_grad_(True)
    assert set(r["fgsm"]) == set(r["pgd"]) == set(r["noise"]) == {"1", "4"}
    assert r["n_real"] == r["n_fake"] == 24
    keys = {"roc_auc", "ap", "accuracy", "detection_rate", "false_positive_rate", "max_linf_255"}
    assert set(r["clean"]) == keys and r["clean"]["max_linf_255"] is None
    assert r["clean"]["accuracy"] >= 0.9
    for attack in ("fgsm", "pgd"):
        for k, row in r[attack].items():
            assert set(row) == keys
            assert row["max_linf_255"] <= float(k) + 1e-4  # the budget, measured
            assert row["accuracy"] <= r["clean"]["accuracy"]
            assert row["detection_rate"] <= r["clean"]["detection_rate"]
        assert r[attack]["4"]["accuracy"] < r["clean"]["accuracy"]
    assert r["noise"]["4"]["max_linf_255"] == pytest.approx(4, abs=1e-4)
    # The attacks use the gradient, the control does not: they must do at least as well.
    assert r["pgd"]["4"]["accuracy"] <= r["noise"]["4"]["accuracy"]
    again = attack_report(det, data, "cpu", eps_list=(1, 4), steps=5, batch=20)
    assert again == r
