"""Perceptual losses: distances between images measured on a network's features.

Networks (registry ``PERCEPTUAL_NETS``) map images ``(B, 3, H, W)`` in [-1, 1] to a list of
feature maps, shallow to deep:

- ``resnet56-cifar``: the CIFAR-10 ResNet-56 of the FD-R56 metric (offline; its weights file),
  after the stem and each of its three stages.
- ``vgg16``: the VGG-16 convolutional stack (Simonyan & Zisserman, 2015) from a state-dict
  file the user has (torchvision's key names, ``features.N.weight``; safetensors or a plain
  PyTorch file, read without unpickling code), tapped at relu1_2 .. relu5_3 as LPIPS taps it.
- ``torchscript``: any network in a TorchScript/``.pt2`` file returning a tensor or a list of
  tensors; it runs the file's code, so it needs ``trust_torchscript``.
- ``discriminator``: the GAN's own discriminator (feature matching, Salimans et al., 2016).

:class:`PerceptualLoss` compares two batches image by image (``distance``: an autoencoder's
reconstructions against their inputs; each tap's features unit-normalised over channels, as
LPIPS does before its learned weights, which we do not have) or as batch statistics
(``feature_matching``: a GAN's fakes against reals).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfake_lab.errors import UserError
from deepfake_lab.registry import Registry

Features = Callable[[Tensor], list[Tensor]]

#: Builders ``(weights, trust_torchscript) -> nn.Module`` whose ``forward`` gives the feature
#: list; ``discriminator`` is listed for its name and built from the trainer's D.
PERCEPTUAL_NETS: Registry[nn.Module] = Registry("perceptual network")

#: VGG-16's ``features`` stack: widths, "M" for max-pooling.
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
#: Indices in that stack of the ReLUs LPIPS taps (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
VGG16_TAPS = (3, 8, 15, 22, 29)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _Frozen(nn.Module):
    """A feature network in eval mode whose weights never train (gradients reach its input)."""

    def freeze(self) -> _Frozen:
        self.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> _Frozen:  # stays in eval mode inside a training G
        return super().train(False)


@PERCEPTUAL_NETS.register("resnet56-cifar")
class ResNet56Perceptual(_Frozen):
    """ResNet-56 (CIFAR-10) features after the stem and each stage, at 32 px.

    Args:
        weights: the released ``resnet56-4bfd9763.th`` (checked by sha256).
    """

    def __init__(self, weights: str | Path | None = None, trust_torchscript: bool = False) -> None:
        super().__init__()
        from deepfake_lab.metrics.features.resnet_cifar import ResNet56Cifar

        if weights is None:
            raise UserError("loss.perceptual.net=resnet56-cifar needs loss.perceptual.weights")
        self.space = ResNet56Cifar(Path(weights))
        self.freeze()

    def forward(self, x: Tensor) -> list[Tensor]:
        net = self.space.net
        out = F.relu(net.bn1(net.conv1(self.space.preprocess(x))))
        taps = [out]
        for stage in (net.layer1, net.layer2, net.layer3):
            out = stage(out)
            taps.append(out)
        return taps


@PERCEPTUAL_NETS.register("vgg16")
class VGG16Perceptual(_Frozen):
    """VGG-16's convolutional stack, ImageNet-normalised input, five ReLU taps.

    Args:
        weights: a state-dict file with torchvision's key names (``features.0.weight``, ...;
            the ``features.`` prefix may be absent): ``.safetensors``, or a PyTorch file read
            with ``weights_only=True``.
    """

    def __init__(self, weights: str | Path | None = None, trust_torchscript: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in VGG16_LAYERS:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                c_in = int(v)
        self.features = nn.Sequential(*layers)
        if weights is None:
            raise UserError("loss.perceptual.net=vgg16 needs loss.perceptual.weights (a file)")
        state = _read_state_dict(Path(weights))
        state = {k.removeprefix("features."): v for k, v in state.items() if "classifier" not in k}
        try:
            self.features.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise UserError(f"{weights} is not a VGG-16 state dict: {first}") from None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    def forward(self, x: Tensor) -> list[Tensor]:
        out = ((x.clamp(-1, 1) + 1) / 2 - self.mean) / self.std
        taps = []
        for i, layer in enumerate(self.features):
            out = layer(out)
            if i in VGG16_TAPS:
                taps.append(out)
            if i == VGG16_TAPS[-1]:
                break
        return taps


@PERCEPTUAL_NETS.register("torchscript")
class TorchScriptPerceptual(_Frozen):
    """A user's network in a TorchScript or ``.pt2`` file (it runs the file's code)."""

    def __init__(self, weights: str | Path | None = None, trust_torchscript: bool = False) -> None:
        super().__init__()
        from deepfake_lab.metrics.features.torchscript import load_module

        if weights is None:
            raise UserError("loss.perceptual.net=torchscript needs loss.perceptual.weights")
        self.net = load_module(Path(weights), trust=trust_torchscript)
        self.freeze()

    def forward(self, x: Tensor) -> list[Tensor]:
        out = self.net(x)
        return list(out) if isinstance(out, (list, tuple)) else [out]


@PERCEPTUAL_NETS.register("discriminator")
def _discriminator_placeholder(
    weights: str | Path | None = None, trust_torchscript: bool = False
) -> nn.Module:
    """Feature matching on the GAN's discriminator: built by :func:`build_perceptual`."""
    raise UserError("the discriminator's features come from the trainer (build_perceptual)")


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise UserError(f"perceptual network weights not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # an untrusted pickle is refused here, not run
        raise UserError(f"cannot read {path} as a state dict: {exc}".splitlines()[0]) from None
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


class PerceptualLoss(nn.Module):
    """Distances on a network's features.

    Args:
        features: images ``(B, 3, H, W)`` in [-1, 1] -> feature maps, shallow to deep.
        layers: which taps to use (indices into that list; None: all).
    """

    def __init__(self, features: Features, layers: Sequence[int] | None = None) -> None:
        super().__init__()
        self._features = features
        if isinstance(features, nn.Module):
            self.net = features  # registered, so .to(device) moves it
        self.layers = None if layers is None else list(layers)

    def _taps(self, x: Tensor) -> list[Tensor]:
        taps = self._features(x)
        if self.layers is None:
            return taps
        try:
            return [taps[i] for i in self.layers]
        except IndexError:
            raise UserError(
                f"loss.perceptual.layers {self.layers}: the network has {len(taps)} taps "
                f"(0..{len(taps) - 1})"
            ) from None

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        """Mean over taps of the squared difference of channel-normalised features: ``x`` and
        ``y`` ``(B, 3, H, W)`` -> scalar (0 when they are equal)."""
        total = x.new_zeros(())
        taps_x, taps_y = self._taps(x), self._taps(y)
        for fx, fy in zip(taps_x, taps_y, strict=True):
            fx, fy = _unit(fx.float()), _unit(fy.float())
            total = total + (fx - fy).square().sum(dim=1).mean()
        return total / len(taps_x)

    def feature_matching(self, real: Tensor, fake: Tensor) -> Tensor:
        """Mean over taps of ``|| E[f(real)] - E[f(fake)] ||^2 / C`` (batch means): a GAN
        generator's feature-matching term. The reals' features carry no gradient."""
        with torch.no_grad():
            taps_r = self._taps(real)
        taps_f = self._taps(fake)
        total = fake.new_zeros(())
        for fr, ff in zip(taps_r, taps_f, strict=True):
            total = total + (fr.float().mean(0) - ff.float().mean(0)).square().mean()
        return total / len(taps_f)


def _unit(f: Tensor) -> Tensor:
    return f / (f.square().sum(dim=1, keepdim=True) + 1e-10).sqrt()


def build_perceptual(
    net: str,
    weights: str | Path | None = None,
    layers: Sequence[int] | None = None,
    trust_torchscript: bool = False,
    discriminator: nn.Module | None = None,
) -> PerceptualLoss:
    """The perceptual loss on network ``net`` (a :data:`PERCEPTUAL_NETS` name).

    Raises:
        UserError: an unknown name, a missing or wrong weights file, an untrusted
            TorchScript file, or ``discriminator`` without a discriminator.
    """
    if net == "discriminator":
        features = getattr(discriminator, "features", None)
        if features is None:
            raise UserError("loss.perceptual.net=discriminator needs the GAN's discriminator")
        return PerceptualLoss(features, layers)
    module = PERCEPTUAL_NETS.build(net, weights=weights, trust_torchscript=trust_torchscript)
    return PerceptualLoss(module, layers)
