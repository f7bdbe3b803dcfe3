"""Phase detector: how unequal an image's high frequencies are across the positions of a
2x2 (and 4x4) pixel grid.

A camera image, resized or not, is statistically the same at every pixel position: the
high-pass energy at even rows and columns matches that at odd ones. An up-sampling layer
breaks this at its period: nearest and bilinear up-sampling make some positions smooth
copies or averages of others, a transposed convolution or a pixel shuffle computes each
position with its own filter. The imbalance across positions is a two-sided cue: it grows
whichever way the positions differ. An NPR detector trained on up-samplers that *smooth*
reads one that *adds* per-position texture (an untrained pixel shuffle without
normalisation) as more real than real (held-out ROC-AUC 0.19 in ``bench/generalisation.py``);
this statistic reads the same family at 0.999 without training on it. It sees nothing in
generators that leave no periodic trace, so it is meant as a fusion member beside ``npr``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfake_lab.models.detectors.base import Detector, luma
from deepfake_lab.models.detectors.registry import DETECTORS

#: The periods whose grid positions are compared: 2 (one up-sampling by 2) and 4 (two).
PERIODS = (2, 4)
#: High-pass filters: the 4-neighbour Laplacian, horizontal and vertical second differences.
KERNELS = (
    ((0.0, -1.0, 0.0), (-1.0, 4.0, -1.0), (0.0, -1.0, 0.0)),
    ((0.0, 0.0, 0.0), (-1.0, 2.0, -1.0), (0.0, 0.0, 0.0)),
    ((0.0, -1.0, 0.0), (0.0, 2.0, 0.0), (0.0, -1.0, 0.0)),
)
#: Guards a flat image (no high-pass energy at all) against 0 / 0 and log(0).
EPS = 1e-6


def phase_imbalance(x: Tensor) -> Tensor:
    """Log coefficient of variation of the mean absolute high-pass response over the
    ``p x p`` grid positions, per filter and period.

    Cyclic shifts of the grid only relabel its positions, so the value does not depend on
    where a crop starts. Always float32, outside autocast.

    Args:
        x: float images ``(B, 3, H, W)`` in [-1, 1], H and W >= 3 + max period.

    Returns:
        float32 ``(B, len(KERNELS) * len(PERIODS))``: ``log(std / mean + 1e-4)`` over the
        ``p * p`` positions, filters within periods. About -6 to -3 (mean -4.2 at period
        2, -3.4 at period 4) on FFHQ faces and CC0 portraits at 128 px; higher is more
        unequal.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        gray = luma(x)
        kernels = gray.new_tensor(KERNELS).unsqueeze(1)  # (K, 1, 3, 3)
        energy = F.conv2d(gray, kernels).abs()  # (B, K, H - 2, W - 2)
        b, k = energy.shape[:2]
        feats = []
        for p in PERIODS:
            h, w = energy.shape[-2] // p * p, energy.shape[-1] // p * p
            cells = energy[..., :h, :w].reshape(b, k, h // p, p, w // p, p)
            per_position = cells.mean(dim=(2, 4)).flatten(2)  # (B, K, p * p)
            cv = per_position.std(dim=2) / (per_position.mean(dim=2) + EPS)
            feats.append(torch.log(cv + 1e-4))
        return torch.cat(feats, dim=1)


@DETECTORS.register("phase")
class PhaseDetector(Detector):
    """``phase_imbalance`` standardised over the data (BatchNorm without affine parameters,
    as ``spectrum``), into one linear layer (zero-initialised: p = 0.5 at first).

    Six numbers per image, so it trains in seconds and its weights are the explanation (one
    per filter and period); no spatial map, so no Grad-CAM. ``freeze("backbone")`` fixes the
    standardisation.

    Args:
        size: nominal input resolution in pixels (any size >= 7 works).
    """

    any_size = True

    def __init__(self, size: int = 64) -> None:
        super().__init__(size)
        n = len(KERNELS) * len(PERIODS)
        self.norm = nn.BatchNorm1d(n, affine=False)
        self.head = nn.Linear(n, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def features(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W)`` in [-1, 1] -> the standardised imbalance ``(B, 6)``."""
        return self.norm(phase_imbalance(x))

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, 3, H, W)`` in [-1, 1] -> logits ``(B,)`` (positive = fake)."""
        return self.head(self.features(x))[:, 0]

    def head_modules(self) -> list[nn.Module]:
        return [self.head]
