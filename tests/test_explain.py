"""Grad-CAM: localisation on a constructed model, range and shape, clean-up, overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from deepfake_lab.errors import UserError
from deepfake_lab.explain import gradcam, gradcam_with_logits, overlay, overlay_names
from deepfake_lab.models.detectors import build_detector
from deepfake_lab.models.detectors.base import Detector

# The region the toy model looks at: rows 2..7, columns 9..14 of a 16 px image.
REGION = (slice(2, 8), slice(9, 15))


class _MaskedFeatures(nn.Module):
    """Positive per-pixel features, zeroed outside REGION: downstream sees only the region."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        nn.init.constant_(self.conv.weight, 0.1)
        nn.init.constant_(self.conv.bias, 1.0)  # inputs in [-1, 1] -> features in [0.7, 1.3]
        mask = torch.zeros(1, 1, 16, 16)
        mask[..., REGION[0], REGION[1]] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.conv(x)) * self.mask


class _RegionDetector(Detector):
    """A detector whose fake logit depends on REGION only (the mask is inside the CAM layer)."""

    def __init__(self) -> None:
        super().__init__(16)
        self.features = _MaskedFeatures()
        self.head = nn.Linear(4, 1)
        nn.init.constant_(self.head.weight, 0.5)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))[:, 0]

    def head_modules(self) -> list[nn.Module]:
        return [self.head]

    def gradcam_layer(self) -> nn.Module:
        return self.features


def _images(n: int, size: int = 16, seed: int = 0) -> Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_constructed_model_highlights_its_region():
    model = _RegionDetector()
    x = _images(3)
    # The logit really ignores everything outside the region.
    y = x.clone()
    y[..., :, :9] = torch.rand_like(y[..., :, :9])
    with torch.no_grad():
        assert torch.allclose(model(x), model(y))
    heat = gradcam(model, x)
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[REGION] = True
    assert heat.shape == (3, 16, 16)
    assert heat[:, inside].min() > 0.5  # every region pixel lit
    assert heat[:, ~inside].max() == 0.0  # nothing outside


@pytest.mark.parametrize("name,kwargs", [("npr", {"width": 8}), ("resnet", {"width": 4})])
def test_heatmaps_range_shape_and_logits(name, kwargs):
    model = build_detector(name, size=16, **kwargs).eval()
    x = _images(3)
    heat, logits = gradcam_with_logits(model, x)
    assert heat.shape == (3, 16, 16) and heat.dtype == torch.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    assert torch.all((heat.flatten(1).amax(1) == 1.0) | (heat.flatten(1).amax(1) == 0.0))
    with torch.no_grad():
        assert torch.allclose(logits, model(x), atol=1e-6)  # same forward pass as scoring


def test_upsampled_to_the_input_size_of_a_coarse_layer():
    model = build_detector("resnet-cifar", depth=20, size=48).eval()  # layer3 is 8x8
    heat = gradcam(model, _images(2, size=48))
    assert heat.shape == (2, 48, 48)


def test_hooks_removed_no_parameter_grads_mode_restored():
    model = build_detector("npr", size=16, width=8)
    model.train()  # parameters require grad, as in training
    layer = model.gradcam_layer()
    with torch.inference_mode():  # callers may scan in inference mode
        gradcam(model, _images(2))
    assert model.training  # restored
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())
    assert layer is model.gradcam_layer()
    # An error inside the hook (a layer without a spatial map) still removes it.
    with pytest.raises(UserError, match=r"\(B, C, h, w\)"):
        gradcam(model, _images(2), layer=model.head)
    assert not any(m._forward_hooks for m in model.modules())


def test_detector_without_spatial_layer_is_a_clear_error():
    model = build_detector("spectrum", size=16, bins=8)
    with pytest.raises(UserError, match="spectrum detector has no spatial feature map"):
        gradcam(model, _images(1))
    assert not any(m._forward_hooks for m in model.modules())


def test_overlay_blends_a_colour_map():
    image = np.full((8, 8, 3), 100, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[:2, :2] = 1.0
    out = overlay(image, heat, alpha=0.5)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert not np.array_equal(out[0, 0], out[7, 7])  # hot and cold corners differ
    assert np.array_equal(overlay(image, heat, alpha=0.0), image)
    jet_max = np.array([0.5, 0.0, 0.0]) * 255  # jet at 1.0 is dark red
    assert np.allclose(overlay(image, np.ones((8, 8)), alpha=1.0)[0, 0], jet_max, atol=1)
    with pytest.raises(ValueError):
        overlay(image.astype(np.float32), heat)


def test_overlay_names_are_derived_and_unique(tmp_path):
    paths = [
        tmp_path / "real" / "a.png",
        tmp_path / "fake" / "a.png",
        tmp_path / "fake" / "a.jpg",
        tmp_path / "x__y" / "z.png",
        tmp_path / "x" / "y__z.png",
    ]
    names = overlay_names(paths)
    assert names[:3] == [
        "real__a.png.gradcam.png",
        "fake__a.png.gradcam.png",
        "fake__a.jpg.gradcam.png",
    ]
    assert names[3] == "x__y__z.png.gradcam.png" and names[4] == "x__y__z.png-2.gradcam.png"
    assert overlay_names([Path("one.png")]) == ["one.png.gradcam.png"]
