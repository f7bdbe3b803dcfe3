"""Meso4 (Afchar et al., WIFS 2018): four conv/batch-norm/max-pool blocks looking at
mesoscopic image properties, with the authors' released Deepfake and Face2Face weights."""

from __future__ import annotations

from torch import nn

from deepfake_lab.models.detectors.mesonet_common import (
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


@DETECTORS.register("meso4")
class Meso4Detector(MesoNetDetector):
    """Meso4: ``Conv 3x3 (8)``, ``Conv 5x5 (8)``, ``Conv 5x5 (16)``, ``Conv 5x5 (16)``, each
    with ReLU, batch-norm and a max-pool (2, 2, 2, 4), then Dropout, Dense(16),
    LeakyReLU(0.1), Dropout, Dense(1). About 28k parameters.

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

    arch = "meso4"
    published_weights = tuple(PUBLISHED["meso4"])

    def __init__(self, size: int = 256, weights: str | None = None) -> None:
        super().__init__(size)
        self.features = nn.Sequential(
            ConvBlock(3, 8, 3, 2),
            ConvBlock(8, 8, 5, 2),
            ConvBlock(8, 16, 5, 2),
            ConvBlock(16, 16, 5, 4),
        )
        self._finish(weights)

    def _load_keras(self, layers: list[KerasLayer], what: str) -> None:
        convs = by_kind(layers, "conv2d", 4, what)
        bns = by_kind(layers, "batch_normalization", 4, what)
        dense = by_kind(layers, "dense", 2, what)
        for block, conv, bn in zip(self.features, convs, bns, strict=True):
            load_conv(block.conv, conv, what)
            load_batchnorm(block.bn, bn, what)
        load_dense(self.head.fc1, dense[0], what, hwc=(8, 8, 16))
        load_dense(self.head.fc2, dense[1], what)
