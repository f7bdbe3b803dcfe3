"""The FID Inception-v3 (``inception-v3-fid``, label "FID"), in plain torch.

This is the network of Heusel et al.'s TensorFlow FID code (graph
``inception-2015-12-05``), as ported to PyTorch by pytorch-fid and reused by torch-fidelity
and clean-fid: torchvision's Inception-v3 layout with the TF graph's quirks: BatchNorm eps
0.001, average pools that exclude the zero padding (``count_include_pad=False``), a *max*
pool in the last block's pool branch, and a 1008-class classifier.

Input pipeline, exactly as torch-fidelity's ``FeatureExtractorInceptionV3`` sees a uint8
image (float32 throughout):

1. pixels: float images in [-1, 1] are quantised as the project saves them
   (``report.grid.to_uint8``): ``trunc(clamp(x * 127.5 + 128, 0, 255))``, i.e. round half up
   of ``(x + 1) * 127.5``. Images loaded as ``p / 127.5 - 1`` give back exactly ``p``, so an
   image folder and the same images as tensors give the same features. uint8 tensors are
   taken as they are.
2. the TensorFlow-1 bilinear resize to 299x299 (``align_corners=False`` without half-pixel
   centres: source coordinate ``i * in / out``), computed with the same float32 operations
   as torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x``, so bit-identical;
3. ``(p - 128) / 128``.

Features are the 2048-d pool3 output. ``logits`` gives the 1008 classifier scores without
the fc bias by default, as the original Inception Score code (and torch-fidelity's
``logits_unbiased``) uses them.

Weights: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` and torch-fidelity's
``weights-inception-2015-12-05-6726825d.pth`` are published as the same bytes (95,628,359
bytes, sha256 ``WEIGHTS_SHA256`` below; the names' suffix is the hash's start, torch hub's
convention; the full hash is as independent public records give it for both names, not
re-downloaded here): a state dict in torchvision ``Inception3`` naming
(``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch1x1.bn.running_mean``, ..., ``fc.weight``),
which this module uses too. We also accept that layout with a ``module.`` prefix, wrapped in
``{"state_dict": ...}``, and with or without BatchNorm's ``num_batches_tracked``.

Speed: the network is frozen, so at load time each BatchNorm is folded into its conv, the
1x1 convs that read the same input are merged into one, and the layout is channels_last
(see ``inception_net``). This changes float32 rounding only (features within 4e-7
relative of torch-fidelity's in the parity test); ``fuse=False`` runs the literal
layer-by-layer network, which matches torch-fidelity bit for bit on CPU.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from deepfake_lab import net
from deepfake_lab.cache import cache_dir
from deepfake_lab.errors import UserError
from deepfake_lab.hashing import sha256_file
from deepfake_lab.metrics.features.base import FEATURE_EXTRACTORS, FeatureExtractor
from deepfake_lab.metrics.features.inception_net import FIDInceptionV3

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's name
WEIGHTS_NAMES = (WEIGHTS_NAME, "weights-inception-2015-12-05-6726825d.pth")  # + torch-fidelity's
WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_NAME
)
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
_MAX_DOWNLOAD_BYTES = 128 << 20  # the file is 95.6 MB; anything far larger is not it
INPUT_SIZE = 299
RESIZE = "tf1-bilinear-299"


def model_cache_dir() -> Path:
    """Our download folder: ``$DEEPFAKE_LAB_CACHE/models`` or ``~/.cache/deepfake-lab/models``."""
    return cache_dir("models")


def candidate_paths() -> list[Path]:
    """Where the weights are looked for, in order: torch hub's checkpoints folder (where
    pytorch-fid and torch-fidelity download them; ``$TORCH_HOME/hub/checkpoints``), then ours."""
    dirs = [Path(torch.hub.get_dir()) / "checkpoints", model_cache_dir()]
    return [d / name for d in dirs for name in WEIGHTS_NAMES]


def resolve_weights(weights: Path | str | None = None, download: bool = True) -> Path:
    """The weights file to use: ``weights``, else a cached copy, else a checked download
    (:func:`deepfake_lab.net.model_file`; none offline).

    The file is not hashed here: :class:`InceptionV3FID` hashes whatever it loads.

    Raises:
        UserError: ``weights`` is not a file, or no copy is found and none can be
            downloaded (one line naming the file, its sha256 and where to put it).
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise UserError(
                f"FID Inception weights {path} not found (--weights); it should be "
                f"{WEIGHTS_NAME} (sha256 {WEIGHTS_SHA256}) from {WEIGHTS_URL}"
            )
        return path
    for path in candidate_paths():
        if path.is_file():
            return path
    spec = net.ModelFile(
        "FID Inception weights", WEIGHTS_NAME, WEIGHTS_URL, WEIGHTS_SHA256, _MAX_DOWNLOAD_BYTES
    )
    return net.model_file(
        spec,
        download=download,
        verify=False,
        alternatives=f" (or {candidate_paths()[0].parent}/), or pass --weights PATH",
        timeout=60.0,
    )


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict in torchvision Inception3 naming from a ``.pth`` file (tensors only).

    Raises:
        UserError: the file is not a plain state dict of tensors.
    """
    try:
        # weights_only: never run pickled code from a downloaded or user-given file.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise UserError(
            f"{path} is not a plain PyTorch state dict ({exc.__class__.__name__}); "
            f"use {WEIGHTS_NAME} (sha256 {WEIGHTS_SHA256})"
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path} does not hold a state dict of tensors; use {WEIGHTS_NAME}")
    # DataParallel prefixes; num_batches_tracked is training bookkeeping that some saves lack.
    # float32: the network runs in float32 whatever precision the file was saved in.
    return {
        k.removeprefix("module."): v.float() if v.is_floating_point() else v
        for k, v in obj.items()
        if not k.endswith("num_batches_tracked")
    }


def quantize_pixels(x: torch.Tensor) -> torch.Tensor:
    """Images as float32 pixel values in {0, ..., 255}, as torch-fidelity receives them.

    Args:
        x: uint8 (B, 3, H, W) pixels, or float (B, 3, H, W) in [-1, 1] (quantised like
            ``report.grid.to_uint8``: ``trunc(clamp(x * 127.5 + 128, 0, 255))``; NaN -> 128).
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images (B, 3, H, W), got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.float()
    if not x.is_floating_point():
        raise ValueError(f"expected float images in [-1, 1] or uint8, got dtype {x.dtype}")
    y = torch.nan_to_num(x.float(), nan=0.0) * 127.5 + 128
    return y.clamp_(0, 255).trunc_()


def resize_like_tf1(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """TensorFlow-1 ``resize_bilinear`` (``align_corners=False``, no half-pixel centres).

    The same float32 operations, in the same order, as torch-fidelity's
    ``interpolate_bilinear_2d_like_tensorflow1x(method="slow")``, hence bit-identical; it
    gathers rows before columns (``index_select``) to touch less memory.

    Args:
        x: float (B, C, H, W).

    Returns:
        float (B, C, size, size).
    """

    def grid(n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos = torch.arange(size, dtype=x.dtype, device=x.device)
        pos = pos * torch.tensor(n_in / size, dtype=torch.float32, device=x.device)
        lo = pos.long()
        return lo, (lo + 1).clamp_max(n_in - 1), pos - lo.float()

    y_lo, y_hi, dy = grid(x.shape[2])
    x_lo, x_hi, dx = grid(x.shape[3])
    dx = dx.view(1, 1, 1, size)
    rows = []
    for y_idx in (y_lo, y_hi):
        r = x.index_select(2, y_idx)
        left, right = r.index_select(3, x_lo), r.index_select(3, x_hi)
        rows.append(left + (right - left) * dx)
    top, bottom = rows
    return top + (bottom - top) * dy.view(1, 1, size, 1)


@FEATURE_EXTRACTORS.register("inception-v3-fid")
class InceptionV3FID(FeatureExtractor):
    """The FID Inception-v3: pool3 features (2048) and 1008-class logits.

    Args:
        weights: the weights file; default: see :func:`resolve_weights` (torch hub's
            checkpoints folder, our cache, then a sha256-checked download).
        download: allow the download.
        allow_unverified: accept a file whose sha256 is not the released one (tests,
            timing). Its scores are then not FID: ``label`` becomes ``FD-Incv3-<sha8>``.
        fuse: fold BatchNorm into the convs and merge parallel 1x1 convs (faster; float32
            rounding differs by about 1e-6 relative).
    """

    name = "inception-v3-fid"
    label = "FID"
    dim = 2048
    is_classifier = True
    num_classes = 1008

    def __init__(
        self,
        weights: Path | str | None = None,
        *,
        download: bool = True,
        allow_unverified: bool = False,
        fuse: bool = True,
    ) -> None:
        super().__init__()
        path = resolve_weights(weights, download)
        digest = sha256_file(path)
        if digest != WEIGHTS_SHA256:
            if not allow_unverified:
                raise UserError(
                    f"{path} is not the FID Inception weights file (sha256 {digest[:12]}..., "
                    f"expected {WEIGHTS_SHA256}); download {WEIGHTS_NAME} from {WEIGHTS_URL}"
                )
            # Another network in the same architecture: never call its distances "FID".
            self.label = f"FD-Incv3-{digest[:8]}"  # type: ignore[misc]
        self.weights_path = path
        self.weights_sha256 = digest
        # Built on the meta device and filled by assignment: no random init to overwrite.
        with torch.device("meta"):
            self.net = FIDInceptionV3(self.num_classes)
        state = load_state_dict_file(path)
        for key in self.net.state_dict():
            if key.endswith("num_batches_tracked"):
                state[key] = torch.zeros((), dtype=torch.long)
        try:
            missing, unexpected = self.net.load_state_dict(state, strict=False, assign=True)
        except RuntimeError as exc:  # shape mismatches
            detail = " ".join(str(exc).split())[:200]
            raise UserError(f"{path} does not fit the FID Inception network: {detail}") from None
        # strict: a partial file must fail, not leave layers without weights.
        if missing or unexpected:
            raise UserError(
                f"{path} does not match the FID Inception layout "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]}); use {WEIGHTS_NAME}"
            )
        self.fused = fuse
        if fuse:
            self.net.fuse()
        self.requires_grad_(False)
        self.eval()

    @property
    def _device(self) -> torch.device:
        return self.net.fc.weight.device

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Images (uint8, or float in [-1, 1]) (B, 3, H, W) -> network input (B, 3, 299, 299)."""
        p = quantize_pixels(x.to(self._device))
        if p.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            p = resize_like_tf1(p)
        return (p - 128) / 128

    @torch.no_grad()
    def features_and_logits(
        self, x: torch.Tensor, bias: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both outputs from one pass: float32 (B, 2048) and (B, 1008)."""
        feats = self.net.pool3(self.preprocess(x))
        return feats, self.net.classify(feats, bias)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W), uint8 or float in [-1, 1] -> float32 (B, 2048) pool3 features."""
        return self.net.pool3(self.preprocess(x))

    @torch.no_grad()
    def logits(self, x: torch.Tensor, bias: bool = False) -> torch.Tensor:
        """Images -> float32 (B, 1008) class logits, without the fc bias unless ``bias``.

        The unbiased logits are what the original Inception Score code, StyleGAN's and
        torch-fidelity's IS use, so they are the default.
        """
        return self.features_and_logits(x, bias)[1]

    def cache_key(self) -> dict[str, object]:
        # Fusion changes rounding only, so it does not define a different feature space.
        return {
            "name": self.name,
            "weights_sha256": self.weights_sha256,
            "resize": RESIZE,
            "input": "uint8 trunc(x*127.5+128), (p-128)/128",
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
