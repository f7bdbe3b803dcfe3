"""CIFAR-10 ResNet-20/56 as small offline feature spaces (labels FD-R20 / FD-R56).

The architecture follows He et al. 2016, section 4.2, as trained by Yerlan Idelbayev's
pytorch_resnet_cifar10 project (BSD-2-Clause), whose released weights we load: a 3x3 stem
with 16 channels, three stages of n BasicBlocks (16/32/64 channels, stride 2 at the start
of stages 2 and 3) with the parameter-free "option A" shortcut, global average pooling,
and a linear classifier over the 10 CIFAR classes. n = 3 gives ResNet-20, n = 9 ResNet-56.

These networks saw only 32x32 CIFAR-10 images (no faces), so distances in their space are
a coarse, offline stand-in for FID: useful to compare runs measured the same way, never
comparable with published FIDs.

Input preprocessing, matching how the weights were trained:
- [-1, 1] -> [0, 1] (torchvision ``ToTensor`` scale);
- resize to 32x32 with antialiased bilinear interpolation (an area-like filter when
  shrinking, so a 128 px face is not aliased into noise);
- normalise with mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225). These are the
  ImageNet constants, not the CIFAR-10 statistics (0.4914, 0.4822, 0.4465) /
  (0.2470, 0.2435, 0.2616): the project's ``trainer.py`` uses the ImageNet values in its
  CIFAR-10 data loaders for training and evaluation, so they are what these weights expect.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from deepfake_lab.errors import UserError
from deepfake_lab.hashing import sha256_file
from deepfake_lab.metrics.features.base import FEATURE_EXTRACTORS, FeatureExtractor

WEIGHTS_SOURCE = "https://github.com/akamaster/pytorch_resnet_cifar10 (folder pretrained_models)"
INPUT_SIZE = 32
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus an option-A shortcut.

    Option A: when the block halves the resolution and doubles the channels, the shortcut
    takes every second pixel and zero-pads the new channels (no parameters), as in the
    paper's CIFAR experiments and in the released weights.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.stride = stride
        self.pad_ch = out_ch - in_ch

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.pad_ch == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        # Split the extra channels evenly before and after, as the weights were trained.
        lo = self.pad_ch // 2
        return F.pad(x, (0, 0, 0, 0, lo, self.pad_ch - lo))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """The CIFAR-10 ResNet-(6n+2); parameter names match the released state dicts."""

    def __init__(self, blocks_per_stage: int, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages = []
        in_ch = 16
        for out_ch, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for b in range(blocks_per_stage):
                blocks.append(BasicBlock(in_ch, out_ch, stride if b == 0 else 1))
                in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(64, num_classes)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised (B, 3, 32, 32) -> (B, 64): the globally average-pooled last stage."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return out.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.pooled(x))


@dataclass(frozen=True)
class WeightsSpec:
    """The released file a model needs: its name and sha256."""

    filename: str
    sha256: str


def load_checked_state_dict(path: Path, spec: WeightsSpec, label: str) -> dict[str, torch.Tensor]:
    """Verify ``path`` against ``spec`` and return its state dict without ``module.`` prefixes.

    Raises:
        UserError: the file is missing, is not the released file, or is not loadable as
            plain tensors.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(
            f"{label} needs the weights file {spec.filename}, not found at {path}; "
            f"download {spec.filename} from {WEIGHTS_SOURCE} and pass its path"
        )
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise UserError(
            f"{path} is not the expected {spec.filename} (sha256 {digest[:12]}..., expected "
            f"{spec.sha256[:12]}...); download it again from {WEIGHTS_SOURCE}"
        )
    try:
        # weights_only: never run pickled code. The released files hold only a dict of
        # tensors plus a float ("best_prec1"), which the restricted unpickler accepts.
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(
            f"{path} holds objects other than tensors and plain values, which we refuse to "
            f"unpickle ({exc.__class__.__name__}); use the released {spec.filename}"
        ) from None
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"{path} has no 'state_dict' entry; use the released {spec.filename}")
    # The project trained under nn.DataParallel, which prefixes every key with "module.".
    return {k.removeprefix("module."): v for k, v in state.items()}


def normalise(
    x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, size: int | None
) -> torch.Tensor:
    """Images in [-1, 1] -> the released weights' input: [0, 1], ImageNet mean/std.

    Args:
        x: ``(B, 3, H, W)`` float images in [-1, 1]; values outside are clamped, as they
            would be when saved as images.
        mean: ``(1, 3, 1, 1)`` channel means; its device is where the result goes.
        std: ``(1, 3, 1, 1)`` channel standard deviations.
        size: side to resize to with antialiased bilinear interpolation (32: what the
            weights saw), or None to keep ``H x W``.

    Returns:
        float32 ``(B, 3, size, size)``, or ``(B, 3, H, W)`` when ``size`` is None.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images (B, 3, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected float images in [-1, 1], got dtype {x.dtype}")
    x = x.to(mean.device, torch.float32).clamp(-1, 1)
    if size is not None and x.shape[-2:] != (size, size):
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    return ((x + 1) / 2 - mean) / std


class ResNetCifarFeatures(FeatureExtractor):
    """Penultimate-layer features of a released CIFAR-10 ResNet (frozen, eval mode).

    Args:
        weights: path to the released ``.th`` file (checked by sha256).
    """

    blocks_per_stage: ClassVar[int]
    weights_spec: ClassVar[WeightsSpec]
    dim: ClassVar[int] = 64

    def __init__(self, weights: Path) -> None:
        super().__init__()
        self.net = ResNetCifar(self.blocks_per_stage)
        state = load_checked_state_dict(weights, self.weights_spec, f"{self.name} ({self.label})")
        # strict: a wrong or partial file must fail loudly, not give a random feature space.
        # (The files predate BatchNorm's num_batches_tracked; PyTorch fills it in.)
        self.net.load_state_dict(state, strict=True)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> normalised (B, 3, 32, 32) on the module's device.

        Values outside [-1, 1] are clamped, as they would be when saved as images.
        """
        return normalise(x, self.mean, self.std, INPUT_SIZE)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> float32 (B, 64) pooled features."""
        return self.net.pooled(self.preprocess(x))

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> float32 (B, 10) CIFAR-10 class logits."""
        return self.net(self.preprocess(x))

    @torch.no_grad()
    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass: float32 (B, 64) features and (B, 10) logits."""
        pooled = self.net.pooled(self.preprocess(x))
        return pooled, self.net.linear(pooled)

    def cache_key(self) -> dict[str, object]:
        # The weights are sha256-checked on load, so the expected hash identifies them.
        return {
            "name": self.name,
            "weights_sha256": self.weights_spec.sha256,
            "input": "32px antialiased bilinear, ImageNet mean/std",
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@FEATURE_EXTRACTORS.register("resnet56-cifar")
class ResNet56Cifar(ResNetCifarFeatures):
    """CIFAR-10 ResNet-56 (top-1 error 6.61%); metric label FD-R56."""

    name = "resnet56-cifar"
    label = "FD-R56"
    is_classifier = True
    blocks_per_stage = 9
    weights_spec = WeightsSpec(
        "resnet56-4bfd9763.th",
        "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367",
    )


@FEATURE_EXTRACTORS.register("resnet20-cifar")
class ResNet20Cifar(ResNetCifarFeatures):
    """CIFAR-10 ResNet-20 (top-1 error 8.27%); metric label FD-R20."""

    name = "resnet20-cifar"
    label = "FD-R20"
    is_classifier = True
    blocks_per_stage = 3
    weights_spec = WeightsSpec(
        "resnet20-12fca82f.th",
        "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8",
    )
