"""FastGAN discriminator (Liu et al., ICLR 2021), adapted to 16..256 px inputs, with its
self-supervised reconstruction decoders run by ``forward_real``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfake_lab import sharded_random
from deepfake_lab.models.base import Discriminator, check_positive, check_size
from deepfake_lab.models.layers import SkipLayerExcitation, UpBlock, init_dcgan_, sn_conv2d
from deepfake_lab.models.registry import DISCRIMINATORS
from deepfake_lab.sharded_random import RandomSource

SIZES = (16, 32, 64, 128, 256)
#: Default width at the input resolution (see the generator's ``DEFAULT_CHANNELS`` for timing).
DEFAULT_CHANNELS = 16


class DownBlockComp(nn.Module):
    """FastGAN's two-path down-sampling block, ``(B, in_ch, H, W) -> (B, out_ch, H/2, W/2)``.

    Main path: 4x4 stride-2 conv and a 3x3 conv (each + BatchNorm + LeakyReLU); shortcut:
    2x2 average pool and a 1x1 conv (+ BatchNorm + LeakyReLU). The two are averaged.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            sn_conv2d(in_ch, out_ch, 4, 2, 1),
            nn.BatchNorm2d(out_ch),
            nn.LeakyReLU(0.2, inplace=True),
            sn_conv2d(out_ch, out_ch, 3, 1, 1),
            nn.BatchNorm2d(out_ch),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.direct = nn.Sequential(
            nn.AvgPool2d(2, 2),
            sn_conv2d(in_ch, out_ch, 1),
            nn.BatchNorm2d(out_ch),
            nn.LeakyReLU(0.2, inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return (self.main(x) + self.direct(x)) / 2


class SimpleDecoder(nn.Sequential):
    """Reconstructs an RGB image from an 8x8 feature map: ``UpBlock``s of constant ``width``
    up to ``out_res``, then a 3x3 conv and tanh. ``(B, in_ch, 8, 8) -> (B, 3, out_res, out_res)``.
    """

    def __init__(self, in_ch: int, width: int, out_res: int) -> None:
        layers: list[nn.Module] = []
        ch, r = in_ch, 8
        while r < out_res:
            layers.append(UpBlock(ch, width))
            ch, r = width, r * 2
        layers += [sn_conv2d(ch, 3, 3, padding=1), nn.Tanh()]
        super().__init__(*layers)


def take_quadrant(x: Tensor, quadrant: Tensor) -> Tensor:
    """Per-sample quadrant crop: ``x`` ``(B, C, H, W)`` (H, W even), ``quadrant`` ``(B,)`` ints in
    0..3 (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) -> ``(B, C, H/2, W/2)``."""
    b, c, h, w = x.shape
    quads = x.reshape(b, c, 2, h // 2, 2, w // 2).permute(0, 2, 4, 1, 3, 5)
    quads = quads.reshape(b, 4, c, h // 2, w // 2)
    return quads[torch.arange(b, device=x.device), quadrant]


@DISCRIMINATORS.register("fastgan")
class FastGANDiscriminator(Discriminator):
    """A 3x3 conv stem at full resolution, then ``DownBlockComp``s down to 8x8, and a small head
    (1x1 conv, BatchNorm, LeakyReLU, 4x4 conv) whose 5x5 patch logits are averaged into one
    logit per image. All convolutions are spectral-normalised.

    Skip-layer excitation uses the paper's pairs (256 -> 32, 128 -> 16, 64 -> 8 at 256 px): the
    map at resolution ``r`` is gated by the map at ``8 r`` wherever that exists (none below
    64 px).

    Self-supervision (``forward_real``): one decoder reconstructs the whole image from the 8x8
    features, another a random quadrant from the matching 8x8 crop of the 16x16 features; both
    at ``min(size / 2, 64)`` px against area-downsampled reals, with an L1 loss (the paper uses
    LPIPS; we have no pretrained network). The paper's second, low-resolution logit branch is
    left out to keep D cheap.

    Widths: the map at resolution ``r`` has ``min(max_channels, channels * size / r)`` channels,
    so ``channels`` is the stem's width and the width doubles per halving. The decoders are
    ``max(8, min(max_channels, channels * size / 64))`` wide throughout (``channels`` at 64 px).

    Args:
        size: input resolution, a power of two in 16..256.
        channels: width at the input resolution.
        max_channels: cap on any layer's width.
    """

    def __init__(
        self, size: int, channels: int = DEFAULT_CHANNELS, max_channels: int = 512
    ) -> None:
        check_size("fastgan", size, SIZES)
        check_positive("fastgan", channels=channels, max_channels=max_channels)
        super().__init__(size)

        def width(r: int) -> int:
            return min(max_channels, channels * size // r)

        self.stem = nn.Sequential(
            sn_conv2d(3, width(size), 3, padding=1), nn.LeakyReLU(0.2, inplace=True)
        )
        self.resolutions = [size // 2**i for i in range(1, size.bit_length() - 3)]  # size/2..8
        self.downs = nn.ModuleDict()
        self.sles = nn.ModuleDict()
        for r in self.resolutions:
            self.downs[f"down{r}"] = DownBlockComp(width(2 * r), width(r))
            if 8 * r <= size:
                self.sles[f"sle{8 * r}to{r}"] = SkipLayerExcitation(width(8 * r), width(r))
        self.head = nn.Sequential(
            sn_conv2d(width(8), width(8), 1),
            nn.BatchNorm2d(width(8)),
            nn.LeakyReLU(0.2, inplace=True),
            sn_conv2d(width(8), 1, 4),  # 8x8 -> 5x5 patch logits
        )
        self.rec_res = min(size // 2, 64)
        dec_width = max(8, min(max_channels, channels * size // 64))
        self.decoder_whole = SimpleDecoder(width(8), dec_width, self.rec_res)
        self.decoder_part = SimpleDecoder(width(16), dec_width, self.rec_res)
        self.apply(init_dcgan_)

    def _features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` ``(B, 3, size, size)`` -> the 8x8 and 16x16 feature maps."""
        h = self.stem(x)
        feats = {self.size: h}  # kept for skip-layer excitation
        for r in self.resolutions:
            h = self.downs[f"down{r}"](h)
            if 8 * r <= self.size:
                h = self.sles[f"sle{8 * r}to{r}"](feats[8 * r], h)
            feats[r] = h
        return feats[8], feats[16]

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, 3, size, size)`` in [-1, 1] -> logits ``(B,)``."""
        feat8, _ = self._features(x)
        return self.head(feat8).mean(dim=(1, 2, 3))

    def forward_real(self, x: Tensor, generator: RandomSource) -> tuple[Tensor, Tensor]:
        """Logits plus the L1 reconstruction loss of the whole image and of one random quadrant
        per sample, from one pass through D's trunk.

        Args:
            x: real (possibly augmented) images ``(B, 3, size, size)`` in [-1, 1].
            generator: draws the quadrant of each sample.

        Returns:
            Logits ``(B,)`` and the scalar loss, the sum of the two mean absolute errors (add
            it to D's loss as is).
        """
        feat8, feat16 = self._features(x)
        logits = self.head(feat8).mean(dim=(1, 2, 3))
        quadrant = sharded_random.randint(generator, 0, 4, x.shape[0]).to(x.device)
        target = x.detach()  # the images are targets, not something to optimise
        rec_whole = self.decoder_whole(feat8)
        rec_part = self.decoder_part(take_quadrant(feat16, quadrant))
        target_whole = F.interpolate(target, size=self.rec_res, mode="area")
        target_part = F.interpolate(take_quadrant(target, quadrant), size=self.rec_res, mode="area")
        # In float32 whatever the autocast dtype: the loss is a mean over many small errors.
        aux = F.l1_loss(rec_whole.float(), target_whole.float()) + F.l1_loss(
            rec_part.float(), target_part.float()
        )
        return logits, aux
