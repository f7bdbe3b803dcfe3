"""Blend-boundary supervision: the detector is also told *where* a pseudo-fake was blended.

A detector trained only on "real or blended?" may answer with any cue that separates its
classes, and the self-blended images of :mod:`deepfake_lab.data.sbi` share one besides their
seam: the inside of the mask is softer than a real face on average. Such a detector reads a
real face that is soft all over (a blurry frame, a head bowed so that the eyes close) as
blended. Face X-ray (Li et al., CVPR 2020) asks the network for the blend's boundary as
well, a map that is zero on every real face however soft it is and that only the seam can
explain; LAA-Net (Nguyen et al., CVPR 2024) does the same with self-blended images.

:class:`SeamHead` is that auxiliary task, for training only: a 1x1 convolution on the
detector's last feature map (the layer ``Detector.gradcam_layer`` names) predicts the
boundary ``4 m (1 - m)`` of the blend weights ``m``, pooled to the feature map's size, with
per-pixel binary cross-entropy. The detector itself, its exports and its scores are
unchanged; the head lives in the training checkpoints (for exact resume) only.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfake_lab.errors import UserError
from deepfake_lab.models.detectors.base import Detector


class SeamHead:
    """The boundary head of one training run, fed by a forward hook on the detector.

    Args:
        model: the detector; its ``gradcam_layer()`` output (B, C, h, w) is what the head
            reads. One dummy forward pass (eval mode, no gradients, no random draws) finds C.
        size: the side of the training images, px.
        device: where the head lives (the model's device).
    """

    def __init__(self, model: Detector, size: int, device: torch.device) -> None:
        layer = model.gradcam_layer()
        if layer is None:
            raise UserError(
                f"seam.weight > 0 needs a detector with a spatial feature map; "
                f"{model.registry_name!r} names none (set seam.weight=0)"
            )
        self._feats: Tensor | None = None
        self._capture = True
        self._handle = layer.register_forward_hook(self._hook)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device=device))
        model.train(was_training)
        assert self._feats is not None
        if self._feats.dim() != 4:
            raise UserError(
                f"seam.weight > 0: the feature map of {model.registry_name!r} has shape "
                f"{tuple(self._feats.shape)}, not (B, C, h, w); set seam.weight=0"
            )
        self.conv = nn.Conv2d(self._feats.shape[1], 1, 1).to(device)
        nn.init.normal_(self.conv.weight, 0.0, 0.01)
        nn.init.constant_(self.conv.bias, -3.0)  # the boundary is rare: start near "none"
        self._feats, self._capture = None, False

    def _hook(self, _module: nn.Module, _inputs: Any, output: Tensor) -> None:
        if self._capture:
            self._feats = output

    def parameters(self) -> list[nn.Parameter]:
        return list(self.conv.parameters())

    def capture(self, on: bool) -> None:
        """Keep the feature map of the next forward passes (on) or of none (off): only the
        training step's own forward pass should feed the head, not PGD's or validation's."""
        self._capture = on
        if not on:
            self._feats = None

    def loss(self, seams: Tensor, known: Tensor, count: Tensor | None = None) -> Tensor:
        """Mean per-pixel BCE of the captured forward pass's boundary logits.

        Args:
            seams: float32 (B, S, S) in [0, 1], the boundary target at image resolution.
            known: (B,) bool, False for images whose blend region is not known (left out).
            count: what the known images' sum is divided by (default: how many there are,
                at least 1); a data-parallel rank passes the global batch's count over the
                number of ranks.

        Returns:
            A scalar: the mean over the known images (0 when none is known).
        """
        if self._feats is None:
            raise RuntimeError("no feature map captured: call capture(True) before forward")
        logits = self.conv(self._feats)[:, 0]
        target = F.adaptive_avg_pool2d(seams[:, None], logits.shape[-2:])[:, 0]
        per_image = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        weight = known.to(per_image.dtype)
        if count is None:
            count = weight.sum().clamp_min(1.0)
        return (per_image.mean(dim=(1, 2)) * weight).sum() / count

    def predict(self, x: Tensor, model: nn.Module) -> Tensor:
        """Boundary probabilities (B, h, w) in [0, 1] for images ``x`` (B, 3, S, S) in
        [-1, 1], for looking at what the head learnt (no gradients)."""
        self.capture(True)
        try:
            with torch.no_grad():
                model(x)
                assert self._feats is not None
                return torch.sigmoid(self.conv(self._feats)[:, 0])
        finally:
            self.capture(False)

    def state_dict(self) -> dict[str, Tensor]:
        return self.conv.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.conv.load_state_dict(state)
