"""NPR detector: neighbouring-pixel relationships (Tan et al., CVPR 2024, "Rethinking the
Up-Sampling Operations in CNN-based Generative Network for Generalizable Deepfake Detection").

Generators up-sample (nearest, bilinear, transposed conv), which ties every pixel to its
neighbours inside each 2x2 cell. NPR removes the image content by subtracting a nearest
down-then-up-sampled copy, so that the network sees only those local relationships, a trace
shared by generators it never saw.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from deepfake_lab.models.base import check_positive
from deepfake_lab.models.detectors.base import Detector
from deepfake_lab.models.detectors.registry import DETECTORS
from deepfake_lab.models.detectors.resnet import (
    SMALL_STEM_MAX_SIZE,
    init_resnet_,
    make_stage,
    make_stem,
)

#: The official code feeds ``NPR * 2 / 3`` to the first conv; kept so that the residual has
#: the same scale relative to the input as there.
RESIDUAL_SCALE = 2.0 / 3.0


def npr_residual(x: Tensor) -> Tensor:
    """``x - up_nearest(down_nearest(x, 1/2), 2)``: each pixel minus the top-left pixel of its
    2x2 cell.

    On even sizes this equals the official
    ``interpolate(interpolate(x, scale_factor=0.5, mode="nearest"), scale_factor=2,
    mode="nearest")`` exactly (nearest down-sampling by 2 keeps the even rows and columns).
    Odd sizes work too: the last, incomplete cell is up-sampled past the edge and cropped.

    Args:
        x: ``(B, C, H, W)``, any H, W >= 1.

    Returns:
        ``(B, C, H, W)``; zero wherever the image is constant over its 2x2 cells (for instance
        an image nearest-up-sampled by 2).
    """
    h, w = x.shape[-2:]
    ref = F.interpolate(x[..., ::2, ::2], scale_factor=2.0, mode="nearest")
    return x - ref[..., :h, :w]


@DETECTORS.register("npr")
class NPRDetector(Detector):
    """The NPR residual into a small ResNet, global average pooling and one logit.

    The official model is a ResNet-50 cut after its first two stages (3 + 4 bottleneck blocks,
    256 and 512 channels) behind a 3x3/2 conv + max-pool stem. Here: ``stages`` stages of
    ``blocks`` BasicBlocks each, ``width``, 2 x ``width``, ... channels (stride 1 in the
    first stage, 2 after), i.e. 64 and 128 channels by default (about 0.7 M parameters). The
    stem is a 3x3 conv: stride 1 without max-pool for ``size <= 64`` (a 64 px face keeps its
    pixel grid), the official stride 2 + 3x3/2 max-pool above. Any input size works.

    Args:
        size: nominal input resolution in pixels (chooses the stem).
        width: channels of the stem and the first stage.
        stages: number of stages (the official model uses 2).
        blocks: BasicBlocks per stage.
    """

    any_size = True

    def __init__(self, size: int = 64, width: int = 64, stages: int = 2, blocks: int = 2) -> None:
        super().__init__(size)
        check_positive("npr", width=width, stages=stages, blocks=blocks)
        small = size <= SMALL_STEM_MAX_SIZE
        self.stem = make_stem(width, 3, 1 if small else 2, max_pool=not small)
        layers = []
        in_ch = width
        for i in range(stages):
            out_ch = width * 2**i
            layers.append(make_stage(in_ch, out_ch, blocks, 1 if i == 0 else 2))
            in_ch = out_ch
        self.stages = nn.Sequential(*layers)
        self.head = nn.Linear(in_ch, 1)
        self.apply(init_resnet_)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, 3, H, W)`` in [-1, 1] -> logits ``(B,)`` (positive = fake)."""
        feats = self.stages(self.stem(npr_residual(x) * RESIDUAL_SCALE))
        return self.head(feats.mean(dim=(2, 3)))[:, 0]

    def head_modules(self) -> list[nn.Module]:
        return [self.head]

    def gradcam_layer(self) -> nn.Module:
        return self.stages[-1]
