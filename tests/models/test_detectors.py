"""Detectors: the contract every registered detector meets, and each one's own behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import shared_path
from deepfake_lab.errors import UserError
from deepfake_lab.models import build_discriminator
from deepfake_lab.models.detectors import (
    DETECTORS,
    Detector,
    build_detector,
    gan_d_kwargs_from_checkpoint,
)
from deepfake_lab.models.detectors.npr import npr_residual

#: Tiny constructor arguments per registered detector (a new detector must add itself here).
TINY: dict[str, dict[str, object]] = {
    "resnet": {"size": 16, "width": 4},
    "npr": {"size": 16, "width": 4},
    "spectrum": {"size": 16, "bins": 8},
    "phase": {"size": 16},
    "gan-d": {"arch": "fastgan", "size": 16, "channels": 4, "max_channels": 16},
    "resnet-cifar": {"depth": 8, "size": 16},
    "meso4": {"size": 16},  # runs at 256 px whatever the input: the published architecture
    "mesoinception": {"size": 16},
    # Members at other sizes than the fusion's input: the resize to each is part of it.
    "fusion": {
        "size": 16,
        "members": [
            {"name": "npr", "kwargs": {"size": 8, "width": 4}},
            {"name": "resnet", "kwargs": {"size": 16, "width": 4}},
            {"name": "spectrum", "kwargs": {"size": 16, "bins": 8}},
        ],
    },
}
B = 4


def _images(size: int, seed: int = 0, n: int = B) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def _build(name: str) -> Detector:
    torch.manual_seed(0)
    return build_detector(name, **TINY[name])


def _head_names(det: Detector) -> set[str]:
    head = {id(p) for p in det.head_parameters()}
    return {n for n, p in det.named_parameters() if id(p) in head}


def test_every_detector_has_tiny_kwargs() -> None:
    assert set(TINY) == set(DETECTORS.names())
    with pytest.raises(UserError, match="unknown detector"):
        build_detector("nope")


@pytest.mark.parametrize("name", DETECTORS.names())
def test_forward_backward_and_loss(name: str) -> None:
    det = _build(name)
    assert isinstance(det, Detector) and det.registry_name == name and det.size == 16
    sizes = [16, 23] if det.any_size else [16]  # 23: odd on purpose
    for size in sizes:
        logits = det(_images(size))
        assert logits.shape == (B,) and torch.isfinite(logits).all(), size

    logits = det(_images(16))
    # A random projection, not a plain sum: BatchNorm makes some sums constant.
    (logits * torch.randn(B)).sum().backward()
    for n, p in det.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
        assert p.grad.abs().sum() > 0, f"{n} has an all-zero gradient"

    labels = torch.tensor([0, 1, 1, 0])
    logits = logits.detach()
    assert torch.equal(
        det.loss(logits, labels), F.binary_cross_entropy_with_logits(logits, labels.float())
    )
    pw = torch.tensor(3.0)
    expected = F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=pw)
    assert torch.allclose(det.loss(logits, labels, pos_weight=3.0), expected)


@pytest.mark.parametrize("name", DETECTORS.names())
def test_gradcam_layer_gives_a_spatial_map_with_gradients(name: str) -> None:
    det = _build(name)
    layer = det.gradcam_layer()
    if layer is None:
        assert name in ("spectrum", "phase")  # the detectors without a spatial feature map
        return
    seen: list[torch.Tensor] = []

    def keep(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
        output.retain_grad()
        seen.append(output)

    handle = layer.register_forward_hook(keep)
    det(_images(16)).sum().backward()
    handle.remove()
    assert len(seen) == 1 and seen[0].ndim == 4 and seen[0].shape[0] == B
    assert seen[0].grad is not None and seen[0].grad.abs().sum() > 0


@pytest.mark.parametrize("name", DETECTORS.names())
def test_probabilities_and_state_round_trip(name: str) -> None:
    det = _build(name)
    x = _images(16)
    # One SGD step (and train-mode BatchNorm statistics) so the state is not the init's.
    det.train()
    det.loss(det(x), torch.tensor([0.0, 1.0, 1.0, 0.0])).backward()
    with torch.no_grad():
        for p in det.parameters():
            p -= 0.5 * p.grad

    det.eval()
    with torch.no_grad():
        out = det(x)
        assert torch.equal(det(x), out), "eval-mode output must be deterministic"
        probs = det.probabilities(x, temperature=2.0)
        assert torch.allclose(probs, torch.sigmoid(out / 2.0))
        assert ((probs >= 0) & (probs <= 1)).all()
        with pytest.raises(UserError, match="temperature"):
            det.probabilities(x, temperature=0.0)

        fresh = build_detector(name, **det.init_kwargs).eval()
        assert not torch.equal(fresh(x), out)  # the round trip below is not trivially true
        fresh.load_state_dict(det.state_dict())
        assert torch.equal(fresh(x), out)

        again = build_detector(name, **det.rebuild_kwargs()).eval()
        report = again.init_from(det.state_dict(), strict=True)
        assert not (report.missing or report.mismatched or report.unused)
        assert torch.equal(again(x), out)


@pytest.mark.parametrize("name", DETECTORS.names())
def test_freeze_backbone_trains_only_the_head(name: str) -> None:
    det = _build(name)
    det.freeze("backbone").train()
    trainable = {n for n, p in det.named_parameters() if p.requires_grad}
    assert trainable == _head_names(det) and trainable
    head_buffers = {
        f"{prefix}.{b}"
        for prefix, m in det.named_modules()
        for b, _ in m.named_buffers()
        if any(m is h or any(m is s for s in h.modules()) for h in det.head_modules())
    }
    frozen = {k: v.clone() for k, v in det.state_dict().items() if k not in head_buffers}
    det(_images(16)).sum().backward()  # a training-mode forward and backward
    for k, v in det.state_dict().items():
        if k in frozen:
            assert torch.equal(v, frozen[k]), f"frozen {k} moved"
    assert all(p.grad is None for n, p in det.named_parameters() if n not in trainable)
    assert all(p.grad is not None for n, p in det.named_parameters() if n in trainable)

    det.freeze("none")
    assert all(p.requires_grad for p in det.parameters())
    assert all(m.training for m in det.modules())
    with pytest.raises(UserError, match="freeze mode"):
        det.freeze("everything")


def test_init_from_reports_and_rejects_foreign_states() -> None:
    det = _build("resnet")
    with pytest.raises(UserError, match="no tensor matching"):
        det.init_from({"foo.weight": torch.zeros(3)})
    # Another architecture shares a few names and shapes (the stem), not the rest.
    npr_state = _build("npr").state_dict()
    report = det.init_from({f"module.{k}": v for k, v in npr_state.items()})  # DDP prefix
    assert "stem.0.weight" in report.loaded and report.missing and report.unused
    assert torch.equal(det.state_dict()["stem.0.weight"], npr_state["stem.0.weight"])
    with pytest.raises(UserError, match="strict"):
        det.init_from(npr_state, strict=True)


# -- NPR ---------------------------------------------------------------------------------------
def test_npr_residual_matches_the_official_interpolation() -> None:
    x = torch.randn(2, 3, 16, 24)
    down = F.interpolate(x, scale_factor=0.5, mode="nearest", recompute_scale_factor=True)
    up = F.interpolate(down, scale_factor=2.0, mode="nearest", recompute_scale_factor=True)
    assert torch.equal(npr_residual(x), x - up)


def test_npr_residual_of_a_nearest_upsampled_image_is_zero() -> None:
    small = torch.randn(2, 3, 8, 8)
    x = F.interpolate(small, scale_factor=2.0, mode="nearest")
    assert torch.equal(npr_residual(x), torch.zeros_like(x))
    odd = x[..., :15, :13]  # odd sizes keep their shape and the cells' alignment
    assert torch.equal(npr_residual(odd), torch.zeros_like(odd))
    assert npr_residual(torch.randn(1, 3, 15, 13)).abs().sum() > 0


# -- spectrum ----------------------------------------------------------------------------------
def _smooth(n: int, size: int, seed: int) -> torch.Tensor:
    """Smooth random images: 4x4 noise bilinearly up-sampled, in about [-0.5, 0.5]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g) - 0.5
    return F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)


def _checkerboard(size: int) -> torch.Tensor:
    i = torch.arange(size)
    return ((i[:, None] + i[None, :]) % 2 * 2 - 1).float()  # +-1, period 2 px


def test_spectrum_shows_a_checkerboard_in_the_highest_bins() -> None:
    det = build_detector("spectrum", size=32, bins=16)
    smooth = _smooth(2, 32, seed=0)
    spec_smooth = det.azimuthal_spectrum(smooth)
    spec_cb = det.azimuthal_spectrum(smooth + 0.05 * _checkerboard(32))
    diff = spec_cb - spec_smooth
    # A 2-px checkerboard is the single frequency (1/2, 1/2) cycles/px, the spectrum's
    # corner: only the last bin changes, by orders of magnitude in power.
    assert (diff.argmax(dim=1) == 15).all()
    assert (diff[:, -1] > 3).all()
    assert diff[:, :-1].abs().max() < 1e-4


def _held_out_accuracy(det: Detector, toy) -> float:
    """Train ``det`` for 20 Adam steps on ``toy(0)``; its accuracy on ``toy(100)``."""
    x, y = toy(0)
    opt = torch.optim.Adam(det.parameters(), lr=0.1)
    det.train()
    for _ in range(20):
        opt.zero_grad()
        det.loss(det(x), y).backward()
        opt.step()
    det.eval()
    x_test, y_test = toy(100)  # held out
    with torch.no_grad():
        return float(((det(x_test) > 0).float() == y_test).float().mean())


def test_spectrum_separates_a_toy_set_in_a_few_steps() -> None:
    def toy(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        real = _smooth(32, 32, seed)
        fake = _smooth(32, 32, seed + 1) + 0.02 * _checkerboard(32)
        return torch.cat([real, fake]), torch.cat([torch.zeros(32), torch.ones(32)])

    torch.manual_seed(0)
    det = build_detector("spectrum", size=32, bins=16)
    accuracy = _held_out_accuracy(det, toy)
    assert accuracy == 1.0


# -- phase -------------------------------------------------------------------------------------
def _per_position(n: int, size: int, seed: int, gains: tuple[float, ...]) -> torch.Tensor:
    """Smooth images plus white noise whose strength depends on the position in each 2x2
    cell (``gains`` for (0,0), (0,1), (1,0), (1,1)): a pixel shuffle's kind of trace."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 3, size, size, generator=g) * 0.02
    gain = torch.tensor(gains).view(2, 2).repeat(size // 2, size // 2)
    return _smooth(n, size, seed) + noise * gain


def test_phase_reads_unequal_positions_either_way_wherever_the_crop_starts() -> None:
    from deepfake_lab.models.detectors.phase import phase_imbalance

    even = phase_imbalance(_per_position(4, 32, 0, (1, 1, 1, 1)))
    louder = phase_imbalance(_per_position(4, 32, 0, (1, 1, 1, 3)))  # one position noisier
    quieter = phase_imbalance(_per_position(4, 32, 0, (1, 1, 1, 0.2)))  # one smoother
    assert even.shape == (4, 6)
    for other in (louder, quieter):  # two-sided: both are more unequal than even
        assert (other[:, :3] > even[:, :3] + 0.5).all()  # period 2, the pattern's own
        assert (other[:, 3:] > even[:, 3:] + 0.1).all()  # period 4 holds it, diluted
    shifted = phase_imbalance(_per_position(4, 34, 0, (1, 1, 1, 3))[..., 1:33, 1:33])
    torch.testing.assert_close(shifted[:, :3], louder[:, :3], atol=0.3, rtol=0)
    flat = phase_imbalance(torch.zeros(1, 3, 16, 16))
    assert torch.isfinite(flat).all()


def test_phase_separates_a_toy_set_in_a_few_steps() -> None:
    def toy(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        real = _per_position(32, 32, seed, (1, 1, 1, 1))
        fake = _per_position(32, 32, seed + 1, (1, 2, 1, 1))
        return torch.cat([real, fake]), torch.cat([torch.zeros(32), torch.ones(32)])

    torch.manual_seed(0)
    det = build_detector("phase", size=32)
    accuracy = _held_out_accuracy(det, toy)
    assert accuracy >= 0.95


# -- gan-d -------------------------------------------------------------------------------------
def test_gan_d_from_a_dcgan_state_is_minus_d() -> None:
    torch.manual_seed(1)
    d = build_discriminator("dcgan", size=16, channels=8)
    d(_images(16)).sum().backward()  # move the BatchNorm statistics off their defaults
    d.eval()
    det = build_detector("gan-d", arch="dcgan", size=16, channels=8)
    report = det.init_from(d.state_dict(), strict=True)
    assert not report.unused
    det.eval()
    x = _images(16, seed=3)
    with torch.no_grad():
        assert torch.equal(det(x), -d(x))


def test_gan_d_from_a_fastgan_checkpoint() -> None:
    torch.manual_seed(1)
    d = build_discriminator("fastgan", size=16, channels=4, max_channels=16)
    ckpt = {
        "arch": {"discriminator": {"name": "fastgan", "kwargs": d.init_kwargs}},
        "D": d.state_dict(),
    }
    kwargs = gan_d_kwargs_from_checkpoint(ckpt)
    assert kwargs == {"arch": "fastgan", "size": 16, "channels": 4, "max_channels": 16}
    det = build_detector("gan-d", **kwargs)
    report = det.init_from(ckpt["D"], strict=True)
    # Only the reconstruction decoders are left out.
    assert report.unused and all(k.startswith("decoder_") for k in report.unused)
    assert not any("decoder" in n for n, _ in det.named_parameters())
    d.eval(), det.eval()
    x = _images(16, seed=4)
    with torch.no_grad():
        assert torch.allclose(det(x), -d(x))
    with pytest.raises(UserError, match="discriminator"):
        gan_d_kwargs_from_checkpoint({"G": {}})


# -- resnet-cifar ------------------------------------------------------------------------------
def test_resnet_cifar_loads_the_released_weights(tmp_path: Path) -> None:
    from deepfake_lab.metrics.features.resnet_cifar import ResNet20Cifar

    weights = shared_path("models", "resnet20-12fca82f.th")
    det = build_detector("resnet-cifar", depth=20, size=64, pretrained=str(weights)).eval()
    fx = ResNet20Cifar(weights)
    x = _images(64, seed=5)
    with torch.no_grad():
        assert torch.equal(det.preprocess(x), fx.preprocess(x))
        assert torch.allclose(det.backbone.pooled(det.preprocess(x)), fx.features(x))
    # The folder works too, and an export rebuilds without the file.
    by_folder = build_detector("resnet-cifar", depth=20, pretrained=str(weights.parent))
    assert torch.equal(by_folder.state_dict()["backbone.conv1.weight"], fx.net.conv1.weight)
    assert det.rebuild_kwargs() == {"depth": 20, "size": 64, "pretrained": None}
    # A raw released state dict ("module." prefixes, CIFAR classifier) initialises a scratch one.
    raw = torch.load(weights, map_location="cpu", weights_only=True)["state_dict"]
    report = build_detector("resnet-cifar", depth=20).init_from(raw)
    assert report.unused == ["linear.bias", "linear.weight"]
    assert report.missing == ["head.weight", "head.bias"]

    with pytest.raises(UserError, match="not found") as err:
        build_detector("resnet-cifar", depth=20, pretrained=str(tmp_path / "missing.th"))
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="depth"):
        build_detector("resnet-cifar", depth=32, pretrained=str(weights))


def test_resnet_cifar_can_run_at_the_faces_own_size() -> None:
    weights = shared_path("models", "resnet20-12fca82f.th")
    at32 = build_detector("resnet-cifar", depth=20, size=64, pretrained=str(weights)).eval()
    native = build_detector(
        "resnet-cifar", depth=20, size=64, pretrained=str(weights), input_size=None
    ).eval()
    x = _images(64, seed=6)
    with torch.no_grad():
        # Same normalisation, no resize: the 64 px detail reaches the pretrained convolutions.
        assert native.preprocess(x).shape == (x.shape[0], 3, 64, 64)
        assert at32.preprocess(x).shape == (x.shape[0], 3, 32, 32)
        assert torch.allclose(native.preprocess(x), ((x + 1) / 2 - native.mean) / native.std)
        assert not torch.allclose(
            native.backbone.pooled(native.preprocess(x)), at32.backbone.pooled(at32.preprocess(x))
        )
    # The choice survives a rebuild (exports and checkpoints rebuild from these kwargs).
    assert native.rebuild_kwargs()["input_size"] is None
    for bad in (4, "64", True):
        with pytest.raises(UserError, match="input_size"):
            build_detector("resnet-cifar", depth=20, input_size=bad)
