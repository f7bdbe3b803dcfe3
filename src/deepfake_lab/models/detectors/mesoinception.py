"""MesoInception-4 (Afchar et al., WIFS 2018): Meso4 with its first two convolutions replaced
by small inception blocks with dilated branches, with the authors' released Deepfake and
Face2Face weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfake_lab.models.detectors.mesonet_common import (
    KERAS_BN_EPS,
    KERAS_BN_MOMENTUM,
    PUBLISHED,
    ConvBlock,
    KerasLayer,
    MesoNetDetector,
    by_kind,
    load_batchnorm,
    load_conv,
    load_dense,
)
from deepfake_lab.models.detectors.registry import DETECTORS


class InceptionBlock(nn.Module):
    """The authors' ``InceptionLayer(a, b, c, d)`` then batch-norm and a 2x2 max-pool.

    Four branches, each conv with ReLU and ``'same'`` padding, concatenated along channels
    in this order: 1x1 (a); 1x1 + 3x3 (b); 1x1 + 3x3 dilation 2 (c); 1x1 + 3x3 dilation 3
    (d). ``(B, in, H, W) -> (B, a + b + c + d, H / 2, W / 2)``.
    """

    def __init__(self, in_ch: int, a: int, b: int, c: int, d: int) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(in_ch, a, 1)
        self.b2_1x1 = nn.Conv2d(in_ch, b, 1)
        self.b2_3x3 = nn.Conv2d(b, b, 3, padding=1)
        self.b3_1x1 = nn.Conv2d(in_ch, c, 1)
        self.b3_3x3 = nn.Conv2d(c, c, 3, padding=2, dilation=2)
        self.b4_1x1 = nn.Conv2d(in_ch, d, 1)
        self.b4_3x3 = nn.Conv2d(d, d, 3, padding=3, dilation=3)
        self.bn = nn.BatchNorm2d(a + b + c + d, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)
        self.pool = nn.MaxPool2d(2)

    def convs_in_keras_order(self) -> list[nn.Conv2d]:
        """The convolutions in the order the authors' code creates them."""
        return [
            self.b1,
            self.b2_1x1,
            self.b2_3x3,
            self.b3_1x1,
            self.b3_3x3,
            self.b4_1x1,
            self.b4_3x3,
        ]

    def forward(self, x: Tensor) -> Tensor:
        y = torch.cat(
            [
                F.relu(self.b1(x)),
                F.relu(self.b2_3x3(F.relu(self.b2_1x1(x)))),
                F.relu(self.b3_3x3(F.relu(self.b3_1x1(x)))),
                F.relu(self.b4_3x3(F.relu(self.b4_1x1(x)))),
            ],
            dim=1,
        )
        return self.pool(self.bn(y))


@DETECTORS.register("mesoinception")
class MesoInceptionDetector(MesoNetDetector):
    """MesoInception-4: ``InceptionLayer(1, 4, 4, 2)`` and ``InceptionLayer(2, 4, 4, 2)``, each
    with batch-norm and a 2x2 max-pool, then Meso4's last two conv blocks (5x5, 16) and
    head. About 28k parameters.

    The network always runs at 256x256 in [0, 1] (see ``MesoNetDetector.preprocess``), so
    any input size works; the logit is the negated input of the authors' P(real) sigmoid.

    Args:
        size: nominal input resolution in pixels (what ``detect`` and training resize
            images to; the network resizes to 256 itself).
        weights: None for a fresh network (``mesonet_common.init_fresh_``); ``"DF"`` or
            ``"F2F"`` for the released weights (the cache, else a sha256-checked download);
            or the path of a Keras ``.h5`` file of this architecture. Rebuilding from an
            export does not need it (see ``rebuild_kwargs``).
    """

    arch = "mesoinception"
    published_weights = tuple(PUBLISHED["mesoinception"])

    def __init__(self, size: int = 256, weights: str | None = None) -> None:
        super().__init__(size)
        self.features = nn.Sequential(
            InceptionBlock(3, 1, 4, 4, 2),
            InceptionBlock(11, 2, 4, 4, 2),
            ConvBlock(12, 16, 5, 2),
            ConvBlock(16, 16, 5, 4),
        )
        self._finish(weights)

    def _load_keras(self, layers: list[KerasLayer], what: str) -> None:
        convs = by_kind(layers, "conv2d", 16, what)
        bns = by_kind(layers, "batch_normalization", 4, what)
        dense = by_kind(layers, "dense", 2, what)
        ours = [conv for block in self.features[:2] for conv in block.convs_in_keras_order()]
        ours += [self.features[2].conv, self.features[3].conv]
        for conv, layer in zip(ours, convs, strict=True):
            load_conv(conv, layer, what)
        for block, bn in zip(self.features, bns, strict=True):
            load_batchnorm(block.bn, bn, what)
        load_dense(self.head.fc1, dense[0], what, hwc=(8, 8, 16))
        load_dense(self.head.fc2, dense[1], what)
