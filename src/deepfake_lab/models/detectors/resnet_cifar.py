"""Transfer learning from the CIFAR-10 ResNet-20/56 weights that the metrics already use."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from deepfake_lab.errors import UserError
from deepfake_lab.metrics.features.resnet_cifar import (
    INPUT_SIZE,
    MEAN,
    STD,
    ResNet20Cifar,
    ResNet56Cifar,
    ResNetCifar,
    load_checked_state_dict,
    normalise,
)
from deepfake_lab.models.detectors.base import Detector
from deepfake_lab.models.detectors.registry import DETECTORS

#: Depths with released weights, and their files.
PRETRAINED = {20: ResNet20Cifar.weights_spec, 56: ResNet56Cifar.weights_spec}


@DETECTORS.register("resnet-cifar")
class ResNetCifarDetector(Detector):
    """A CIFAR-10 ResNet-(6n+2) backbone with a new one-logit linear head.

    Inputs go through the feature extractor's preprocessing (``normalise``): clamp,
    antialiased bilinear resize to ``input_size`` (32 by default: the weights only saw
    32 px) and the ImageNet mean/std the weights were trained with. Then the backbone's
    globally pooled 64-d features feed ``head``. The 10-class CIFAR classifier is dropped.
    Any input size works.

    The 32 px resize keeps the CIFAR features as they were trained, but it also throws
    away the fine detail where blending seams and up-sampling artefacts live. With
    ``input_size=None`` the network runs on the faces at ``size`` px: its convolutions are
    the pretrained ones, applied at a scale they were not trained at (16x the compute at
    128 px).

    Use ``freeze("backbone")`` to train the head only (a linear probe; the backbone's
    BatchNorm statistics stay fixed) or ``freeze("none")`` to fine-tune all of it.

    Args:
        depth: 6n+2 (20 and 56 have released weights; others train from scratch).
        size: input resolution in pixels that the data pipeline delivers.
        input_size: side the backbone sees (inputs are resized to it), or None for ``size``
            itself, without resizing.
        pretrained: path of the released ``.th`` file for ``depth`` (sha256-checked), or of
            the folder holding it; None for random initialisation. Rebuilding from an export
            does not need it (see ``rebuild_kwargs``).
    """

    any_size = True
    load_only_kwargs = ("pretrained",)

    def __init__(
        self,
        depth: int = 56,
        size: int = 32,
        pretrained: str | None = None,
        input_size: int | None = INPUT_SIZE,
    ) -> None:
        super().__init__(size)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise UserError(f"resnet-cifar: depth must be 6n+2 (20, 56, ...); got {depth!r}")
        if input_size is not None and (
            isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 8
        ):
            raise UserError(
                f"resnet-cifar: input_size must be a side in px (>= 8) or null; got {input_size!r}"
            )
        self.input_size = input_size
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
        """``(B, 3, H, W)`` in [-1, 1] -> normalised float32 ``(B, 3, S, S)``.

        ``S`` is ``input_size``, or ``H`` (= ``W``) when it is None.
        """
        # The feature extractor's helper, so both see identical inputs at 32 px.
        return normalise(x, self.mean, self.std, self.input_size)

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
