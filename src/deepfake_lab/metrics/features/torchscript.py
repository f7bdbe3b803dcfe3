"""Any user-provided network as a feature space: a TorchScript or ``torch.export`` file.

This is the way to measure in a space we do not ship (DINOv2, CLIP, a face-recognition
net, ...) without touching the metric code: save the network once where it is available,

    >>> torch.jit.save(torch.jit.script(net), "dino.pt")       # TorchScript, or
    >>> torch.export.save(torch.export.export(net, (x,), dynamic_shapes=...), "dino.pt2")

then ``--features torchscript --weights dino.pt``. A ``.pt2`` file is loaded with
``torch.export.load`` (TorchScript's successor; TorchScript is deprecated from PyTorch
2.11 on but still loads), anything else with ``torch.jit.load``.

Contract of the saved module: ``forward(x)`` takes float32 (B, 3, H, W) images in the
range given by ``input_range`` (default [-1, 1], our images' range) and returns (B, D).
Images are passed at their own size unless ``size`` is given, in which case they are
first resized to ``size`` x ``size`` (antialiased bilinear). ``D`` is found by a dry run.

Trust: loading one of these files means running its code. ``torch.jit.load`` does not
unpickle arbitrary Python objects (TorchScript has its own restricted unpickler), but the
module's TorchScript code can call any operator in the process, file I/O included, and the
loader has had memory-safety bugs; PyTorch's security policy says to treat a TorchScript
model like an executable from its provider, and there is no safe mode. Likewise for
``.pt2`` programs. So loading is an explicit opt-in: ``trust=True`` here,
``--trust-torchscript`` on the command line; without it the file is refused before it is
opened, and with it a :class:`TrustedCodeWarning` names the file and its sha256. Only load
files you would run as programs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deepfake_lab.errors import UserError
from deepfake_lab.hashing import sha256_file
from deepfake_lab.metrics.features.base import FEATURE_EXTRACTORS, FeatureExtractor

#: input_range -> (scale, offset) applied to images in [-1, 1]: x * scale + offset.
INPUT_RANGES = {"-1,1": (1.0, 0.0), "0,1": (0.5, 0.5), "0,255": (127.5, 127.5)}
_PROBE_SIZE = 64  # side of the dry-run images when no ``size`` is given


class TrustedCodeWarning(UserWarning):
    """A TorchScript or ``.pt2`` file is being loaded, which runs its code."""


def refuse_untrusted(path: Path) -> UserError:
    """The error for a module file loaded without the opt-in."""
    return UserError(
        f"{path}: a TorchScript or .pt2 file runs its code when loaded (it can read, write or "
        "delete your files); load it only if you would run it as a program: "
        "--trust-torchscript (trust=True in Python; metrics.trust_torchscript=true for the "
        "metrics of train gan)"
    )


def load_module(path: Path, *, trust: bool = False, digest: str | None = None) -> nn.Module:
    """The network in a ``.pt2`` (torch.export) or TorchScript file, on the CPU.

    Args:
        path: the file.
        trust: the caller's opt-in to running the file's code (see the module docstring);
            loading warns with :class:`TrustedCodeWarning`.
        digest: the file's sha256 when the caller has it (named in the warning).

    Raises:
        UserError: no opt-in, or the file does not exist or is not loadable as such.
    """
    if not path.is_file():
        raise UserError(f"module file {path} not found (--weights: a TorchScript or .pt2 file)")
    if not trust:
        raise refuse_untrusted(path)
    warnings.warn(
        f"running the code in {path} (sha256 {(digest or sha256_file(path))[:16]}...), "
        "trusted by --trust-torchscript / trust=True",
        TrustedCodeWarning,
        stacklevel=2,
    )
    try:
        if path.suffix == ".pt2":
            return torch.export.load(path).module()
        with warnings.catch_warnings():
            # TorchScript is deprecated but still the common exchange format; say it once here.
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(path, map_location="cpu")
    except Exception as exc:  # the loaders raise RuntimeError, ValueError, zipfile errors...
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        kind = "torch.export (.pt2)" if path.suffix == ".pt2" else "TorchScript"
        raise UserError(f"{path} is not a loadable {kind} module: {detail}") from None


@FEATURE_EXTRACTORS.register("torchscript")
class TorchScriptFeatures(FeatureExtractor):
    """Features from a user's TorchScript or torch.export module file.

    Args:
        weights: the module file (``torch.jit.save`` output, or ``.pt2`` from
            ``torch.export.save``).
        label: the metric label of this space; default ``FD-<file stem>``. "FID" is
            reserved for ``inception-v3-fid``.
        input_range: what the module expects: ``"-1,1"`` (default), ``"0,1"`` or
            ``"0,255"`` (float pixel values, not rounded).
        size: resize images to ``size`` x ``size`` first (antialiased bilinear); default:
            pass them as they are.
        trust: run the file's code (required: see the module docstring); default False
            refuses the file.
    """

    name = "torchscript"
    label = "FD-TorchScript"  # replaced per instance
    dim = 0  # found by the dry run, per instance

    def __init__(
        self,
        weights: Path | str,
        label: str | None = None,
        input_range: str = "-1,1",
        size: int | None = None,
        trust: bool = False,
    ) -> None:
        super().__init__()
        path = Path(weights).expanduser()
        if input_range not in INPUT_RANGES:
            raise UserError(f"input_range must be one of {', '.join(INPUT_RANGES)}")
        if size is not None and size < 1:
            raise UserError(f"size must be positive, got {size}")
        label = label or f"FD-{path.stem}"
        if label.upper() == "FID":
            raise UserError("the label FID is reserved for the inception-v3-fid feature space")
        self.weights_sha256 = sha256_file(path) if path.is_file() and trust else ""
        self.module = load_module(path, trust=trust, digest=self.weights_sha256)
        self.label, self.input_range, self.size = label, input_range, size  # type: ignore[misc]
        self.requires_grad_(False)
        self.eval()
        probe = torch.zeros(2, 3, size or _PROBE_SIZE, size or _PROBE_SIZE)
        try:
            out = self._run(probe)
        except Exception as exc:
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise UserError(
                f"{path}: the module fails on a (2, 3, {probe.shape[-1]}, {probe.shape[-1]}) "
                f"float batch ({detail}); does it need a fixed input size (size=)?"
            ) from None
        if out.ndim != 2 or out.shape[0] != 2 or not out.is_floating_point():
            raise UserError(
                f"{path}: the module must return float features (B, D), got "
                f"{out.dtype} of shape {tuple(out.shape)} for a batch of 2"
            )
        self.dim = int(out.shape[1])  # type: ignore[misc]

    def train(self, mode: bool = True) -> TorchScriptFeatures:
        # An exported (.pt2) module refuses train()/eval(); it runs as it was exported.
        if isinstance(getattr(self, "module", None), torch.fx.GraphModule):
            self.training = False
            return self
        return super().train(False)  # type: ignore[return-value]

    def _device(self) -> torch.device:
        for t in (*self.module.parameters(), *self.module.buffers()):
            return t.device
        return torch.device("cpu")

    @torch.no_grad()
    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
            raise ValueError(f"expected float images (B, 3, H, W), got {x.dtype} {tuple(x.shape)}")
        x = x.to(self._device(), torch.float32).clamp(-1, 1)
        if self.size is not None and x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, (self.size, self.size), mode="bilinear", antialias=True)
        scale, offset = INPUT_RANGES[self.input_range]
        if scale != 1.0 or offset != 0.0:
            x = x * scale + offset
        return self.module(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images float (B, 3, H, W) in [-1, 1] -> float32 (B, dim)."""
        out = self._run(x)
        if out.shape != (x.shape[0], self.dim):
            raise ValueError(f"module returned shape {tuple(out.shape)}, expected (B, {self.dim})")
        return out.float()

    def cache_key(self) -> dict[str, object]:
        return {
            "name": self.name,
            "weights_sha256": self.weights_sha256,
            "label": self.label,
            "input_range": self.input_range,
            "size": self.size,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
