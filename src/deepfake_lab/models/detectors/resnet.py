"""ResNet-18/34-style detector trained from scratch (He et al., CVPR 2016), adapted to small
face crops; its blocks are shared with the NPR detector."""

from __future__ import annotations

from torch import Tensor, nn

from deepfake_lab.errors import UserError
from deepfake_lab.models.base import check_positive
from deepfake_lab.models.detectors.base import Detector
from deepfake_lab.models.detectors.registry import DETECTORS

#: Blocks per stage for each supported depth (BasicBlocks, as in torchvision).
DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
#: Largest nominal size that gets the small-input stem (3x3 stride 1, no max-pool).
SMALL_STEM_MAX_SIZE = 64


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut, ``(B, in_ch, H, W) -> (B, out_ch, H/s, W/s)``.

    The shortcut is the identity, or a strided 1x1 conv + BN when the shape changes
    (torchvision's "option B").
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def make_stage(in_ch: int, out_ch: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` BasicBlocks; the first one changes the width and applies ``stride``."""
    layers = [BasicBlock(in_ch, out_ch, stride)]
    layers += [BasicBlock(out_ch, out_ch) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def make_stem(out_ch: int, kernel: int, stride: int, max_pool: bool) -> nn.Sequential:
    """Conv (``kernel`` x ``kernel``, ``stride``) + BN + ReLU, optionally a 3x3/2 max-pool."""
    layers: list[nn.Module] = [
        nn.Conv2d(3, out_ch, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    ]
    if max_pool:
        layers.append(nn.MaxPool2d(3, 2, 1))
    return nn.Sequential(*layers)


def init_resnet_(module: nn.Module) -> None:
    """He init for convs (fan-out, as torchvision), unit-scale BatchNorm, small linear heads;
    for ``model.apply``."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        # A small head starts every image near p = 0.5, so the first steps are not wasted
        # undoing confident random predictions.
        nn.init.normal_(module.weight, 0.0, 0.01)
        nn.init.zeros_(module.bias)


@DETECTORS.register("resnet")
class ResNetDetector(Detector):
    """ResNet-18/34 with BasicBlocks, global average pooling and one logit.

    Four stages of ``width``, 2, 4 and 8 x ``width`` channels (strides 1, 2, 2, 2), with
    ``DEPTHS[depth]`` blocks. The stem depends on the nominal ``size``: for ``size <= 64`` a
    3x3 stride-1 conv without max-pool (as CIFAR ResNets: a 7x7/2 conv and a max-pool would
    shrink a 64 px face to 16 px before the first block and discard exactly the
    pixel-level traces a detector needs); above that, the ImageNet stem (7x7/2 conv +
    3x3/2 max-pool). Global average pooling makes any input size work (at least 8 px).

    Args:
        size: nominal input resolution in pixels (chooses the stem).
        depth: 18 or 34.
        width: channels of the first stage (64 in the original).
    """

    any_size = True

    def __init__(self, size: int = 64, depth: int = 18, width: int = 64) -> None:
        super().__init__(size)
        check_positive("resnet", width=width)
        if depth not in DEPTHS:
            raise UserError(f"resnet: depth must be one of {sorted(DEPTHS)}; got {depth!r}")
        small = size <= SMALL_STEM_MAX_SIZE
        self.stem = make_stem(width, 3 if small else 7, 1 if small else 2, max_pool=not small)
        stages = []
        in_ch = width
        for i, blocks in enumerate(DEPTHS[depth]):
            out_ch = width * 2**i
            stages.append(make_stage(in_ch, out_ch, blocks, 1 if i == 0 else 2))
            in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(in_ch, 1)
        self.apply(init_resnet_)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, 3, H, W)`` in [-1, 1] -> logits ``(B,)`` (positive = fake)."""
        feats = self.stages(self.stem(x))
        return self.head(feats.mean(dim=(2, 3)))[:, 0]

    def head_modules(self) -> list[nn.Module]:
        return [self.head]

    def gradcam_layer(self) -> nn.Module:
        return self.stages[-1]
