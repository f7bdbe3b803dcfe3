"""Transfer learning from the CIFAR-10 ResNet-20/56 weights that the metrics already use."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from deepfake_lab.errors import UserError
from deepfake_lab.metrics.features.resnet_cifar import (
    MEAN,
    STD,
    ResNet20Cifar,
    ResNet56Cifar,
    ResNetCifar,
    ResNetCifarFeatures,
    load_checked_state_dict,
)
from deepfake_lab.models.detectors.base import Detector
from deepfake_lab.models.detectors.registry import DETECTORS

#: Depths with released weights, and their files.
PRETRAINED = {20: ResNet20Cifar.weights_spec, 56: ResNet56Cifar.weights_spec}


@DETECTORS.register("resnet-cifar")
class ResNetCifarDetector(Detector):
    """A CIFAR-10 ResNet-(6n+2) backbone with a new one-logit linear head.

    Inputs go through the feature extractor's own preprocessing
    (``ResNetCifarFeatures.preprocess``): clamp, antialiased bilinear resize to 32x32 (faces
    are bigger; the weights only saw 32 px) and the ImageNet mean/std the weights were
    trained with. Then the backbone's globally pooled 64-d features feed ``head``. The
    10-class CIFAR classifier is dropped. Any input size works.

    Use ``freeze("backbone")`` to train the head only (a linear probe; the backbone's
    BatchNorm statistics stay fixed) or ``freeze("none")`` to fine-tune all of it.

    Args:
        depth: 6n+2 (20 and 56 have released weights; others train from scratch).
        size: nominal input resolution in pixels (inputs are resized to 32 regardless).
        pretrained: path of the released ``.th`` file for ``depth`` (sha256-checked), or of
            the folder holding it; None for random initialisation. Rebuilding from an export
            does not need it (see ``rebuild_kwargs``).
    """

    any_size = True
    load_only_kwargs = ("pretrained",)

    def __init__(self, depth: int = 56, size: int = 32, pretrained: str | None = None) -> None:
        super().__init__(size)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise UserError(f"resnet-cifar: depth must be 6n+2 (20, 56, ...); got {depth!r}")
        self.backbone = ResNetCifar((depth - 2) // 6)
        if pretrained is not None:
            if depth not in PRETRAINED:
                raise UserError(
                    f"resnet-cifar: released weights exist for depth {sorted(PRETRAINED)}; "
                    f"got depth {depth} with pretrained={pretrained!r}"
                )
            spec = PRETRAINED[depth]
            path = Path(pretrained).expanduser()
            if path.is_dir():
                path = path / spec.filename
            state = load_checked_state_dict(path, spec, f"resnet-cifar (depth {depth})")
            # strict: a partial file must fail loudly rather than leave random layers.
            self.backbone.load_state_dict(state, strict=True)
        self.backbone.linear = nn.Identity()  # the CIFAR classifier; ``head`` replaces it
        self.head = nn.Linear(64, 1)
        nn.init.normal_(self.head.weight, 0.0, 0.01)
        nn.init.zeros_(self.head.bias)
        # Named as ``preprocess`` expects; derived constants, so not saved.
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W)`` in [-1, 1] -> normalised float32 ``(B, 3, 32, 32)``."""
        # The feature extractor's method, so both always see identical inputs; it reads only
        # the ``mean`` and ``std`` buffers, which this module has too.
        return ResNetCifarFeatures.preprocess(self, x)  # type: ignore[arg-type]

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, 3, H, W)`` in [-1, 1] -> logits ``(B,)`` (positive = fake)."""
        return self.head(self.backbone.pooled(self.preprocess(x)))[:, 0]

    def head_modules(self) -> list[nn.Module]:
        return [self.head]

    def gradcam_layer(self) -> nn.Module:
        return self.backbone.layer3

    def _source_keys(self, key: str) -> tuple[str, ...]:
        # A released CIFAR state dict names the backbone's tensors without "backbone.".
        return (key, key.removeprefix("backbone."))
