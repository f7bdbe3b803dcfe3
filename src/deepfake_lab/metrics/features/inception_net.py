"""The FID Inception-v3 network (pytorch-fid's ``fid_inception_v3``), without torchvision.

Module and parameter names follow torchvision's ``Inception3`` (``Mixed_5b.branch1x1.conv
.weight``, ...), the layout of the released ``pt_inception-2015-12-05`` state dict. The
TensorFlow graph differs from torchvision's Inception-v3 in three ways, all kept here:
BatchNorm eps 0.001, average pools that ignore the zero padding (``count_include_pad=
False``), and a max pool (not an average pool) in the pool branch of the last block.

``FIDInceptionV3.fuse()`` rewrites the frozen network for speed: each conv absorbs its
BatchNorm, the 1x1 convs of a block that read the block input are merged into one wider
conv, and tensors are kept channels_last (faster convs and pools on CPU). A pool branch
"3x3 average pool, then 1x1 conv" joins the merged conv too, reordered as "1x1 conv, then
pool": both are linear and the pool's weights sum to one, so the result is the same up to
float rounding, and the pool then runs on 32-192 channels instead of 192-2048.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn


def _avg3(x: torch.Tensor) -> torch.Tensor:
    # TF's average pool divides by the number of real (unpadded) pixels.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 0.001) -> ReLU; after ``fuse()``, conv+bias -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size, stride: int = 1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=False
        )
        self.bn: nn.Module = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the eval-mode BatchNorm into the conv: w' = w * g / s, b' = beta - mu * g / s,
        with s = sqrt(var + eps)."""
        bn = self.bn
        if not isinstance(bn, nn.BatchNorm2d):
            return
        conv = self.conv
        # The per-channel factors in float64; the weight product then rounds once in float32
        # (a float64 copy of all 24M weights would only add load time).
        scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        shift = bn.bias.double() - bn.running_mean.double() * scale
        # Reuse the conv: a new nn.Conv2d would spend time on a random init we overwrite.
        conv.weight = nn.Parameter(conv.weight * scale.float().view(-1, 1, 1, 1))
        conv.bias = nn.Parameter(shift.float())
        self.bn = nn.Identity()


class _Block(nn.Module):
    """Shared head logic: the 1x1 ``BasicConv2d`` children named in ``heads`` read the block
    input; with ``avg_pool_head``, so does ``branch_pool`` after a 3x3 average pool."""

    heads: ClassVar[tuple[str, ...]] = ()
    avg_pool_head: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.merged: nn.Conv2d | None = None
        self.sizes: list[int] = []

    def run_heads(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of the head convs (after ReLU), in ``heads`` order, then the pool branch."""
        if self.merged is None:
            outs = [getattr(self, n)(x) for n in self.heads]
            if self.avg_pool_head:
                outs.append(self.branch_pool(_avg3(x)))
            return outs
        y = self.merged(x)
        if not self.avg_pool_head:
            return list(F.relu(y).split(self.sizes, dim=1))
        n_pool = self.sizes[-1]
        main, pool = y.split([y.shape[1] - n_pool, n_pool], dim=1)
        return [*F.relu(main).split(self.sizes[:-1], dim=1), F.relu(_avg3(pool))]

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold BatchNorms, then merge the head convs into one (see the module docstring)."""
        if self.merged is not None:  # already fused
            return
        for m in list(self.modules()):
            if isinstance(m, BasicConv2d):
                m.fuse()
        names = list(self.heads) + (["branch_pool"] if self.avg_pool_head else [])
        if len(names) < 2:
            return
        convs = [getattr(self, n).conv for n in names]
        merged = nn.Conv2d(
            convs[0].in_channels, sum(c.out_channels for c in convs), 1, device="meta"
        )
        merged.weight = nn.Parameter(torch.cat([c.weight for c in convs]))
        merged.bias = nn.Parameter(torch.cat([c.bias for c in convs]))
        self.merged, self.sizes = merged, [c.out_channels for c in convs]
        for n in names:
            delattr(self, n)


class InceptionA(_Block):
    """35x35 block; pool branch: 3x3 average pool (padding excluded) -> 1x1 conv."""

    heads = ("branch1x1", "branch5x5_1", "branch3x3dbl_1")
    avg_pool_head = True

    def __init__(self, in_ch: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_ch, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_ch, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_ch, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1, b5, b3, bp = self.run_heads(x)
        b5 = self.branch5x5_2(b5)
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(b3))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(_Block):
    """Grid reduction 35 -> 17."""

    heads = ("branch3x3dbl_1",)

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_ch, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        (bd,) = self.run_heads(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(bd))
        return torch.cat([b3, bd, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(_Block):
    """17x17 block with factorised 7x7 convs; pool branch as in ``InceptionA``."""

    heads = ("branch1x1", "branch7x7_1", "branch7x7dbl_1")
    avg_pool_head = True

    def __init__(self, in_ch: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_ch, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_ch, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_ch, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_ch, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1, b7, bd, bp = self.run_heads(x)
        b7 = self.branch7x7_3(self.branch7x7_2(b7))
        for i in range(2, 6):
            bd = getattr(self, f"branch7x7dbl_{i}")(bd)
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(_Block):
    """Grid reduction 17 -> 8."""

    heads = ("branch3x3_1", "branch7x7x3_1")

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_ch, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_ch, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3, b7 = self.run_heads(x)
        b3 = self.branch3x3_2(b3)
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(b7)))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(_Block):
    """8x8 block with split 1x3/3x1 convs. ``pool="max"`` is the TF graph's last block
    (``Mixed_7c``), whose pool branch uses a 3x3 max pool where the paper has an average."""

    heads = ("branch1x1", "branch3x3_1", "branch3x3dbl_1")

    def __init__(self, in_ch: int, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        # Instance attribute: only the average-pool variant can be merged into the heads.
        self.avg_pool_head = pool == "avg"  # type: ignore[misc]
        self.branch1x1 = BasicConv2d(in_ch, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_ch, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_ch, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = self.run_heads(x)
        b1, b3, bd = outs[:3]
        if self.avg_pool_head:
            bp = outs[3]
        else:
            bp = self.branch_pool(F.max_pool2d(x, kernel_size=3, stride=1, padding=1))
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(bd)
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        return torch.cat([b1, b3, bd, bp], 1)


class FIDInceptionV3(nn.Module):
    """The network from normalised input (B, 3, 299, 299) in [-1, 1] to pool3 and logits."""

    def __init__(self, num_classes: int = 1008) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, num_classes)
        self.channels_last = False

    def pool3(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised (B, 3, 299, 299) -> float32 (B, 2048) globally average-pooled features."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1).float()

    def classify(self, feats: torch.Tensor, bias: bool = False) -> torch.Tensor:
        """pool3 (B, 2048) -> (B, num_classes) logits, with the fc bias only if ``bias``."""
        logits = feats.mm(self.fc.weight.T)
        return logits + self.fc.bias if bias else logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.pool3(x), bias=True)

    @torch.no_grad()
    def fuse(self, channels_last: bool = True) -> FIDInceptionV3:
        """Fold BatchNorms and merge head convs (frozen use only); optionally channels_last."""
        for child in list(self.children()):
            if isinstance(child, _Block | BasicConv2d):
                child.fuse()
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)
        return self


def random_fid_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict in the release layout, for tests and timing (no weights here).

    Scaled so activations neither vanish nor explode through the 94 conv layers: He-normal
    convs (std sqrt(2 / fan_in)), BatchNorm gains and variances in [0.5, 1.5), small
    biases and means, and an fc with std 1 / sqrt(2048).
    """
    g = torch.Generator().manual_seed(seed)
    state = {}
    with torch.device("meta"):  # names and shapes only
        shapes = {k: v.shape for k, v in FIDInceptionV3().state_dict().items()}
    for k, shape in shapes.items():
        v = torch.zeros(shape, dtype=torch.long if k.endswith("num_batches_tracked") else None)
        if k.endswith("conv.weight"):
            v = torch.randn(v.shape, generator=g) * (2.0 / v[0].numel()) ** 0.5
        elif k.endswith(("bn.weight", "running_var")):
            v = torch.rand(v.shape, generator=g) + 0.5
        elif k.endswith(("bn.bias", "running_mean")) or k == "fc.bias":
            v = torch.randn(v.shape, generator=g) * 0.1
        elif k == "fc.weight":
            v = torch.randn(v.shape, generator=g) / v.shape[1] ** 0.5
        state[k] = v
    return state
