"""Grad-CAM (Selvaraju et al., ICCV 2017) for detectors: where the fake evidence lies.

For the activations ``A`` ``(B, C, h, w)`` of the detector's ``gradcam_layer()`` (its last
spatial stage), each channel is weighted by the spatial mean of the gradient of the fake
logit with respect to it, the weighted sum is passed through a ReLU (only evidence *for*
fake counts) and upsampled to the input size. ``overlay`` draws it over the image.

Detectors without a spatial feature map (``spectrum``) have no Grad-CAM; their explanation is
elsewhere (``spectrum``: one weight per frequency band in ``head.weight``).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfake_lab.errors import UserError
from deepfake_lab.safe_text import file_stem

#: Overlays of smaller images are enlarged to this side for viewing (nearest-neighbour for the
#: image, so its pixels stay what the detector saw).
OVERLAY_MIN_SIDE = 256
_OVERLAY_SUFFIX = ".gradcam.png"


def gradcam_layer_of(model: nn.Module) -> nn.Module:
    """The module Grad-CAM reads in ``model``.

    Raises:
        UserError: the detector has no spatial feature map (e.g. ``spectrum``).
    """
    getter = getattr(model, "gradcam_layer", None)
    layer = getter() if callable(getter) else None
    if layer is None:
        name = getattr(model, "registry_name", type(model).__name__)
        extra = (
            " (its explanation is the per-frequency-band weight vector head.weight)"
            if name == "spectrum"
            else ""
        )
        raise UserError(
            f"the {name} detector has no spatial feature map, so no Grad-CAM{extra}; "
            "drop --explain or use a convolutional detector"
        )
    return layer


def gradcam_with_logits(
    model: nn.Module, x: Tensor, layer: nn.Module | None = None
) -> tuple[Tensor, Tensor]:
    """Grad-CAM heatmaps and the logits of the same forward pass.

    The model runs in eval mode (restored afterwards). A forward hook swaps the layer's
    output for a detached copy that requires grad, and ``torch.autograd.grad`` takes the
    gradient with respect to that copy only: no ``.grad`` is written to any parameter, the
    gradient does not flow below the layer (cheaper, and the input need not require grad),
    and in-place ops after the layer stay legal (they act on a clone, not on the leaf).
    A module backward hook would trip over those in-place ReLUs. The hook is removed
    whatever happens.

    Args:
        model: a detector: ``(B, 3, H, W)`` in [-1, 1] -> logits ``(B,)``, positive = fake.
        x: float images ``(B, 3, H, W)`` in [-1, 1].
        layer: the module to read; default ``model.gradcam_layer()``.

    Returns:
        ``(heatmaps, logits)``: float32 ``(B, H, W)`` in [0, 1] on ``x``'s device (each map
        divided by its maximum; all zeros where nothing speaks for fake), and ``(B,)``
        float32 logits, detached.

    Raises:
        UserError: no spatial layer (see ``gradcam_layer_of``), or the layer's output is not
            a ``(B, C, h, w)`` tensor.
    """
    layer = gradcam_layer_of(model) if layer is None else layer
    captured: list[Tensor] = []

    def hook(_module: nn.Module, _inputs: object, output: object) -> Tensor:
        if not isinstance(output, Tensor) or output.dim() != 4:
            raise UserError(
                f"Grad-CAM needs a (B, C, h, w) feature map from {type(_module).__name__}; "
                f"got {getattr(output, 'shape', type(output).__name__)}"
            )
        leaf = output.detach().requires_grad_(True)
        captured.append(leaf)
        return leaf.clone()

    was_training = model.training
    handle = layer.register_forward_hook(hook)
    try:
        model.eval()
        # inference_mode(False): callers may scan under inference mode, which forbids autograd.
        with torch.inference_mode(False), torch.enable_grad():
            logits = model(x.detach().clone())
            if not captured:
                raise UserError(f"the Grad-CAM layer {type(layer).__name__} was not run")
            (grads,) = torch.autograd.grad(logits.float().sum(), captured[-1])
            acts = captured[-1].detach()
        weights = grads.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        cam = F.relu((weights * acts).sum(dim=1, keepdim=True).float())  # (B, 1, h, w)
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        peak = cam.flatten(1).amax(dim=1).clamp_min(torch.finfo(cam.dtype).tiny)
        heat = (cam / peak[:, None, None]).clamp_(0.0, 1.0)
    finally:
        handle.remove()
        model.train(was_training)
    return heat, logits.detach().float()


def gradcam(model: nn.Module, x: Tensor, layer: nn.Module | None = None) -> Tensor:
    """Grad-CAM heatmaps of the fake logit.

    Args:
        model: a detector (``(B, 3, H, W)`` in [-1, 1] -> logits ``(B,)``).
        x: float images ``(B, 3, H, W)`` in [-1, 1].
        layer: the module to read; default ``model.gradcam_layer()``.

    Returns:
        float32 ``(B, H, W)`` in [0, 1]; see ``gradcam_with_logits``.
    """
    return gradcam_with_logits(model, x, layer)[0]


def overlay(
    image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45, cmap: str = "jet"
) -> np.ndarray:
    """A heatmap drawn over an image with a matplotlib colour map (no pyplot).

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        heatmap: ``(h, w)`` float in [0, 1] (values outside are clipped); resized to
            ``(H, W)`` bilinearly when the sizes differ.
        alpha: weight of the colour map (0 = image only, 1 = colour map only).
        cmap: a matplotlib colour map name.

    Returns:
        ``(H, W, 3)`` uint8 RGB: ``(1 - alpha) * image + alpha * cmap(heatmap)``.
    """
    from matplotlib import colormaps

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    heat = np.clip(np.nan_to_num(np.asarray(heatmap, np.float32)), 0.0, 1.0)
    if heat.ndim != 2:
        raise ValueError(f"expected an (h, w) heatmap, got {heat.shape}")
    height, width = image.shape[:2]
    if heat.shape != (height, width):
        heat = cv2.resize(heat, (width, height), interpolation=cv2.INTER_LINEAR)
    colour = colormaps[cmap](heat)[..., :3].astype(np.float32) * 255.0
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colour
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def overlay_for_viewing(image: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """``overlay`` at a side of at least ``OVERLAY_MIN_SIDE`` (small crops enlarged).

    Args:
        image: ``(S, S, 3)`` uint8 RGB, the detector's input.
        heatmap: ``(S, S)`` in [0, 1].
    """
    factor = max(1, -(-OVERLAY_MIN_SIDE // max(image.shape[:2])))
    if factor > 1:
        image = np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
    return overlay(image, heatmap)


def overlay_names(paths: list[Path]) -> list[str]:
    """Unique PNG names for the overlays of ``paths``, derived from the paths.

    The path relative to the inputs' common folder with ``/`` turned into ``__`` plus
    ``.gradcam.png`` (``real/001.png`` -> ``real__001.png.gradcam.png``); the original
    extension stays, so ``a.png`` and ``a.jpg`` differ. A stem that is too long or holds
    characters a name should not (undecodable bytes, controls, bidi marks) is cleaned and
    shortened by ``safe_text.file_stem``. Any remaining clash (``a__b/c`` vs ``a/b__c``)
    gets ``-2``, ``-3``, ... in input order.
    """
    if not paths:
        return []
    resolved = [Path(p).resolve() for p in paths]
    root = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    names: list[str] = []
    used: set[str] = set()
    for p in resolved:
        rel = p.relative_to(root)
        stem = "__".join(part.replace(" ", "_") for part in rel.parts)
        stem = file_stem(stem, reserve=len(f"-{len(paths)}{_OVERLAY_SUFFIX}"))
        name, n = f"{stem}{_OVERLAY_SUFFIX}", 1
        while name in used:
            n += 1
            name = f"{stem}-{n}{_OVERLAY_SUFFIX}"
        used.add(name)
        names.append(name)
    return names


__all__ = [
    "gradcam",
    "gradcam_layer_of",
    "gradcam_with_logits",
    "overlay",
    "overlay_for_viewing",
    "overlay_names",
]
