"""What the MesoNet detectors (``meso4``, ``mesoinception``) share: the published Keras
weights (where they come from, how they are found and read) and the layers after the
feature extractor.

MesoNet: Afchar, Nozick, Yamagishi and Echizen, "MesoNet: a Compact Facial Video Forgery
Detection Network", WIFS 2018 (https://arxiv.org/abs/1809.00888); code and weights from
https://github.com/DariusAf/MesoNet (Apache-2.0), commit 2144d56.

The released weights are Keras 2.1.5 HDF5 files, read here with h5py alone (no TensorFlow,
nothing unpickled). Keras is channels-last, so:

- convolution kernels ``(kh, kw, in, out)`` become PyTorch's ``(out, in, kh, kw)``;
- the first dense layer reads ``Flatten`` of an ``(H, W, C)`` map, PyTorch flattens
  ``(C, H, W)``: its input rows are permuted accordingly;
- batch-norm keeps gamma, beta, the moving mean and variance, and Keras's epsilon (1e-3 by
  default, read from the file's ``model_config`` when it has one; the released files are
  weights-only, so the Keras 2.1.5 default applies).

Every convolution is ``padding='same'`` with stride 1 and an odd kernel, so Keras pads
``dilation * (k - 1) / 2`` on each side, exactly PyTorch's symmetric padding. The pools
(2, 2, 2, 4) divide 256 exactly, so Keras's ``'same'`` pooling pads nothing.

Inputs: the authors fed 256x256 RGB scaled to [0, 1]; their example reads images with
Keras's ``ImageDataGenerator(rescale=1/255).flow_from_directory(target_size=(256, 256))``,
whose default interpolation is PIL's nearest neighbour. ``forward`` maps our [-1, 1] images
to [0, 1] and, when they are not 256x256, resizes them with ``nearest-exact`` (the same pixel
centres as PIL's NEAREST), so a tensor of the original image gives the authors' numbers.

Output: one sigmoid unit trained on the folders ``df`` and ``real`` in alphabetical order,
so it is P(real). Our detectors return a logit with positive = fake: ``forward`` returns the
negated pre-sigmoid value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfake_lab import net
from deepfake_lab.errors import UserError
from deepfake_lab.hashing import sha256_file
from deepfake_lab.models.detectors.base import Detector

#: The resolution the networks run at (their dense layer reads an 8x8x16 map of it).
INPUT_SIZE = 256
#: The DariusAf/MesoNet commit whose ``weights/`` folder is downloaded.
MESONET_COMMIT = "2144d56a30e48cdcac1976ff13a1c5cdc86376c6"
MESONET_URL = f"https://raw.githubusercontent.com/DariusAf/MesoNet/{MESONET_COMMIT}/weights/"
#: Keras 2.x's BatchNormalization defaults (epsilon; momentum 0.99 = PyTorch's 0.01).
KERAS_BN_EPS = 1e-3
KERAS_BN_MOMENTUM = 0.01
_MAX_DOWNLOAD_BYTES = 4 << 20  # the files are 150-200 kB


@dataclass(frozen=True)
class PublishedWeights:
    """One released weights file.

    Attributes:
        filename: its name in the authors' ``weights/`` folder and in our cache.
        sha256: the pinned digest.
        trained_on: what the fake class was.
    """

    filename: str
    sha256: str
    trained_on: str

    @property
    def url(self) -> str:
        return MESONET_URL + self.filename


#: Released weights per architecture and variant; the first variant is the default.
PUBLISHED: dict[str, dict[str, PublishedWeights]] = {
    "meso4": {
        "DF": PublishedWeights(
            "Meso4_DF.h5",
            "036ed30d04ffd9c7506f825b97c86aa64915f5818931da96817b169aad790af5",
            "Deepfake (autoencoder face swap)",
        ),
        "F2F": PublishedWeights(
            "Meso4_F2F.h5",
            "bcfda015d217b9f8d6557693edbdf9f4e79cfd22672541968dd0e2954462b5d7",
            "Face2Face (reenactment)",
        ),
    },
    "mesoinception": {
        "DF": PublishedWeights(
            "MesoInception_DF.h5",
            "234586d40058e76ef8b6f27ca4b63c06e31c2a5a69c0d8ba6f30b1468ab7bafa",
            "Deepfake (autoencoder face swap)",
        ),
        "F2F": PublishedWeights(
            "MesoInception_F2F.h5",
            "d4533ac8a3197dc35c47405d23d99e888c1d0135e267e03540c7451feaccff3f",
            "Face2Face (reenactment)",
        ),
    },
}


def resolve_weights(arch: str, weights: str, download: bool = True) -> Path:
    """The Keras file that ``weights`` names for ``arch``.

    Args:
        arch: ``"meso4"`` or ``"mesoinception"``.
        weights: a released variant (``"DF"``, ``"F2F"``, any case), looked for in the cache
            (``$DEEPFAKE_LAB_CACHE/models`` or ``~/.cache/deepfake-lab/models``; re-hashed
            on every use) and otherwise downloaded there from the authors' repository,
            sha256-checked (:func:`deepfake_lab.net.model_file`); or the path of a ``.h5``
            file.
        download: allow the download.

    Raises:
        UserError: a missing path, a cached variant whose bytes changed, or a variant
            neither cached nor downloadable (one line naming the file, its URL and sha256,
            and where to put it).
    """
    published = PUBLISHED[arch]
    variant = next((v for v in published if v.lower() == weights.lower()), None)
    if variant is None:
        path = Path(weights).expanduser()
        if not path.exists():
            raise UserError(
                f"{arch}: weights {weights!r} not found; give the path of a Keras .h5 file "
                f"or a released variant: {', '.join(published)}"
            )
        if not path.is_file():
            raise UserError(f"{arch}: weights {path} is a folder; give the .h5 file itself")
        return path
    spec = published[variant]
    return net.model_file(
        net.ModelFile(
            f"{arch} weights {variant}", spec.filename, spec.url, spec.sha256, _MAX_DOWNLOAD_BYTES
        ),
        download=download,
        alternatives=f", or give the file's path ({arch}:PATH to detect, weights=PATH to build)",
    )


# -- reading Keras HDF5 ------------------------------------------------------------------------
@dataclass
class KerasLayer:
    """One Keras layer with weights, as stored.

    Attributes:
        name: e.g. ``conv2d_5``.
        kind: the name without its counter, e.g. ``conv2d``.
        index: the counter (0 when absent): Keras numbers layers of a kind in creation order.
        weights: short weight name (``kernel``, ``bias``, ``gamma``, ...) -> array.
        config: the layer's ``config`` from ``model_config``, when the file has one.
    """

    name: str
    kind: str
    index: int
    weights: dict[str, np.ndarray]
    config: dict[str, Any]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_keras_h5(path: Path, what: str) -> list[KerasLayer]:
    """The layers with weights of a Keras 2 HDF5 file (``save_weights`` or ``save``),
    in creation order (by kind, then Keras's counter).

    Raises:
        UserError: the file is not HDF5 or not a Keras weights file (one line).
    """
    import h5py

    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{what}: {path} is not an HDF5 file ({exc})") from None
    with fh:
        root = fh["model_weights"] if "model_weights" in fh else fh
        if "layer_names" not in root.attrs:
            raise UserError(f"{what}: {path} is not a Keras weights file (no layer_names)")
        configs: dict[str, dict[str, Any]] = {}
        if "model_config" in fh.attrs:
            try:
                model_config = json.loads(_text(fh.attrs["model_config"]))
                for layer in model_config.get("config", {}).get("layers", []):
                    configs[layer.get("name", "")] = layer.get("config", {})
            except (ValueError, AttributeError, TypeError):
                pass  # an unreadable config only loses the epsilons: defaults apply
        layers = []
        for name in map(_text, root.attrs["layer_names"]):
            group = root[name]
            names = [_text(n) for n in group.attrs.get("weight_names", [])]
            if not names:
                continue
            weights = {}
            for full in names:
                short = full.rsplit("/", 1)[-1].split(":", 1)[0]
                weights[short] = np.asarray(group[full], dtype=np.float32)
            m = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
            assert m is not None  # the pattern matches any string
            layers.append(
                KerasLayer(name, m.group(1), int(m.group(2) or 0), weights, configs.get(name, {}))
            )
    layers.sort(key=lambda layer: (layer.kind, layer.index))
    return layers


def _assign(target: Tensor, value: np.ndarray, where: str) -> None:
    if tuple(target.shape) != value.shape:
        raise UserError(f"{where}: shape {value.shape} does not fit {tuple(target.shape)}")
    with torch.no_grad():
        target.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def load_conv(conv: nn.Conv2d, layer: KerasLayer, what: str) -> None:
    """Keras ``Conv2D`` kernel ``(kh, kw, in, out)`` and bias into ``conv``."""
    where = f"{what}: layer {layer.name}"
    _assign(conv.weight, layer.weights["kernel"].transpose(3, 2, 0, 1), where)
    _assign(conv.bias, layer.weights["bias"], where)


def load_batchnorm(bn: nn.BatchNorm2d, layer: KerasLayer, what: str) -> None:
    """Keras ``BatchNormalization`` (gamma, beta, moving mean and variance, epsilon)."""
    where = f"{what}: layer {layer.name}"
    w = layer.weights
    n = bn.num_features
    _assign(bn.weight, w.get("gamma", np.ones(n, np.float32)), where)  # scale=False: 1
    _assign(bn.bias, w.get("beta", np.zeros(n, np.float32)), where)  # center=False: 0
    _assign(bn.running_mean, w["moving_mean"], where)
    _assign(bn.running_var, w["moving_variance"], where)
    bn.eps = float(layer.config.get("epsilon", KERAS_BN_EPS))


def load_dense(linear: nn.Linear, layer: KerasLayer, what: str, hwc: tuple[int, ...] = ()) -> None:
    """Keras ``Dense`` kernel ``(in, out)`` and bias into ``linear``.

    Args:
        hwc: for a dense layer after ``Flatten``, the ``(H, W, C)`` shape Keras flattened:
            its input rows are reordered to PyTorch's ``(C, H, W)`` flattening.
    """
    kernel = layer.weights["kernel"]
    if hwc:
        h, w, c = hwc
        if kernel.shape[0] != h * w * c:
            raise UserError(
                f"{what}: layer {layer.name} reads {kernel.shape[0]} inputs, expected "
                f"{h}x{w}x{c} = {h * w * c}"
            )
        kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
    where = f"{what}: layer {layer.name}"
    _assign(linear.weight, kernel.T, where)
    _assign(linear.bias, layer.weights["bias"], where)


def by_kind(layers: Sequence[KerasLayer], kind: str, count: int, what: str) -> list[KerasLayer]:
    """The ``count`` layers of ``kind``, in creation order; a UserError when the count differs."""
    found = [layer for layer in layers if layer.kind == kind]
    if len(found) != count:
        raise UserError(
            f"{what}: expected {count} {kind} layers in the Keras file, found {len(found)}; "
            "is it the weights of another architecture?"
        )
    return found


# -- the shared network parts ------------------------------------------------------------------
class ConvBlock(nn.Module):
    """Keras ``Conv2D(out, k, padding='same', activation='relu')``, ``BatchNormalization``,
    ``MaxPooling2D(pool)``: ``(B, in, H, W) -> (B, out, H / pool, W / pool)``."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, pool: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2)
        self.bn = nn.BatchNorm2d(out_ch, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)
        self.pool = nn.MaxPool2d(pool)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.bn(F.relu(self.conv(x))))


class MesoHead(nn.Module):
    """Flatten, Dropout(0.5), Dense(16), LeakyReLU(0.1), Dropout(0.5), Dense(1): the Keras
    sigmoid's input (P(real) before the sigmoid), ``(B, 16, 8, 8) -> (B,)``."""

    def __init__(self, in_features: int = 16 * 8 * 8) -> None:
        super().__init__()
        self.drop1 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(in_features, 16)
        self.drop2 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(16, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.drop1(torch.flatten(x, 1))
        x = self.drop2(F.leaky_relu(self.fc1(x), 0.1))
        return self.fc2(x)[:, 0]


#: Initial bias of fresh convolutions (see ``init_fresh_``).
FRESH_CONV_BIAS = 0.1


def init_fresh_(module: nn.Module) -> None:
    """Initialise a fresh network (for ``model.apply``): Glorot-uniform kernels as Keras,
    zero dense biases as Keras, but convolution biases of ``FRESH_CONV_BIAS`` instead of
    zero. The first convolutions see non-negative inputs (the [0, 1] image, and the ReLU
    outputs feeding the inception branches' second convolutions): with a zero bias a unit
    whose few weights all start negative (1 in 8 for a 3-input 1x1 conv) never fires and
    never learns. Batch-norm keeps PyTorch's defaults, which are Keras's."""
    if isinstance(module, nn.Conv2d | nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.constant_(module.bias, FRESH_CONV_BIAS if isinstance(module, nn.Conv2d) else 0.0)


class MesoNetDetector(Detector):
    """The behaviour ``meso4`` and ``mesoinception`` share: preprocessing, the dense head,
    the sign of the output, and loading the released weights.

    Subclasses set ``arch`` (the key of ``PUBLISHED``), build ``self.features`` (images in
    [0, 1] at 256 px -> ``(B, 16, 8, 8)``) before calling ``_finish``, and implement
    ``_load_keras``.

    Attributes:
        weights_info: what ``weights`` loaded (path, file name, sha256, and the variant and
            URL when it is a released file), or None for a fresh network.
    """

    any_size = True
    load_only_kwargs = ("weights",)
    arch: ClassVar[str]
    features: nn.Module

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.weights_info: dict[str, Any] | None = None

    def _finish(self, weights: str | None) -> None:
        """Add the head, initialise (``init_fresh_``), then load ``weights`` (if any)."""
        self.head = MesoHead()
        self.apply(init_fresh_)
        if weights is None:
            return
        if not isinstance(weights, str):
            raise UserError(
                f"{self.arch}: weights must be a path or a variant name; got {weights!r}"
            )
        path = resolve_weights(self.arch, weights)
        what = f"{self.arch} weights {path}"
        self._load_keras(read_keras_h5(path, what), what)
        digest = sha256_file(path)
        variant = next((v for v, s in PUBLISHED[self.arch].items() if s.sha256 == digest), None)
        self.weights_info = {
            "path": str(path),
            "file": path.name,
            "sha256": digest,
            "variant": variant,
            "url": PUBLISHED[self.arch][variant].url if variant else None,
        }

    def _load_keras(self, layers: list[KerasLayer], what: str) -> None:
        raise NotImplementedError

    def preprocess(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W)`` in [-1, 1] -> ``(B, 3, 256, 256)`` in [0, 1] (nearest-neighbour
        resize when the size differs, as Keras's image loader does)."""
        x = (x + 1) * 0.5
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="nearest-exact")
        return x

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, 3, H, W)`` in [-1, 1] -> logits ``(B,)`` (positive = fake): the negated
        input of the authors' sigmoid, whose output is P(real)."""
        return -self.head(self.features(self.preprocess(x)))

    def head_modules(self) -> list[nn.Module]:
        return [self.head]

    def gradcam_layer(self) -> nn.Module:
        return self.features[-1]
