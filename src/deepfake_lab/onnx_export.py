"""ONNX export of detectors, checked against PyTorch on random inputs.

Uses ``torch.onnx.export(..., dynamo=True)`` (the ``torch.export``-based exporter, PyTorch's
default since 2.9). It needs the ``onnx`` and ``onnxscript`` packages; the check needs
``onnxruntime``; all three are the ``onnx`` extra (``pip install 'deepfake-lab[onnx]'``).
The older TorchScript exporter needs ``onnx`` as well and cannot export two of our detectors
(``spectrum``: no ``aten::fft_fft2``; FastGAN ``gan-d``: no ``aten::vdot`` from spectral
norm), while this one exports all of them.

The graph takes ``images`` float32 ``(B, 3, size, size)`` in [-1, 1] (B dynamic) and returns
raw ``logits`` ``(B,)``; calibration stays in ``config.json``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_lab.errors import UserError

#: Largest accepted ``max |onnx - torch|`` as a fraction of the logit scale
#: ``max(1, max |torch logit|)`` (float32 kernels differ in summation order; 1e-4 of the scale
#: is far below any decision that matters and far above that rounding).
TOLERANCE = 1e-4
#: Batch sizes of the check: 1 and more than 1 both go through the dynamic batch axis.
CHECK_BATCHES = (1, 4)
INSTALL_HINT = "pip install 'deepfake-lab[onnx]'"


@dataclass
class OnnxCheck:
    """An ONNX file and how it compared with PyTorch.

    Attributes:
        file: the ``.onnx`` file name.
        opset: ONNX opset of the graph.
        checked: whether onnxruntime ran the comparison.
        max_abs_diff: ``max |onnx - torch|`` over all checked logits (None when unchecked).
        logit_scale: ``max(1, max |torch logit|)`` of those inputs (None when unchecked).
        tolerance: the accepted ``max_abs_diff / logit_scale``.
        n_images: random images compared; ``batches``: their batch sizes.
        skipped: why the check did not run, or None.
    """

    file: str
    opset: int
    checked: bool
    max_abs_diff: float | None = None
    logit_scale: float | None = None
    tolerance: float = TOLERANCE
    n_images: int = 0
    batches: tuple[int, ...] = ()
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (for ``config.json``)."""
        d = asdict(self)
        d["batches"] = list(self.batches)
        return d

    def summary(self) -> str:
        """One line for the console."""
        if not self.checked:
            return f"{self.file} (opset {self.opset}): equality check SKIPPED: {self.skipped}"
        return (
            f"{self.file} (opset {self.opset}): max |onnx - torch| = {self.max_abs_diff:.3g} "
            f"at logit scale {self.logit_scale:.3g} on {self.n_images} random images "
            f"(batches {', '.join(map(str, self.batches))}): OK (tolerance "
            f"{self.tolerance:g} x scale)"
        )


def require_onnx() -> None:
    """Fail early, in one line, when the exporter's packages are missing."""
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(
            f"ONNX export needs the packages {' and '.join(missing)}; install the extra "
            f"with {INSTALL_HINT}"
        )


def onnxruntime_available() -> bool:
    """Whether the equality check can run."""
    return importlib.util.find_spec("onnxruntime") is not None


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    # The exporter logs optional-package notices (torchvision ops) and deprecation warnings
    # from its internals; none of them concern the user's model.
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _reason(exc: BaseException) -> str:
    """One line from the innermost cause: the exporter wraps the useful message (e.g. "No
    ONNX function found for <OpOverload(op='prims.bessel_i0' ...)>") in generic advice."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = lines[0][:240] if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _random_images(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """``(n, 3, size, size)`` uniform in [-1, 1]."""
    return torch.rand(n, 3, size, size, generator=gen) * 2 - 1


def export_onnx(model: torch.nn.Module, path: Path, seed: int = 0) -> OnnxCheck:
    """Write ``model`` as ONNX to ``path`` and compare it with PyTorch on random inputs.

    Args:
        model: a detector (``size`` attribute; ``(B, 3, size, size)`` in [-1, 1] -> ``(B,)``
            logits) on the CPU; it is put in eval mode.
        path: the ``.onnx`` file to write.
        seed: seed of the random test images.

    Returns:
        The check; ``checked=False`` with the reason when onnxruntime is not installed.

    Raises:
        UserError: packages missing, the model cannot be exported (one line with the
            exporter's reason), or ONNX Runtime's logits differ by more than the tolerance.
    """
    require_onnx()
    model.eval()
    name = getattr(model, "registry_name", type(model).__name__)
    size = int(model.size)
    gen = torch.Generator().manual_seed(seed)
    # A batch of 2 for tracing: with a batch of 1 the exporter may treat the axis as fixed.
    example = _random_images(2, size, gen)
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                input_names=["images"],
                output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                verbose=False,
                report=False,
            )
            program.save(str(path))
    except Exception as exc:  # the exporter raises many types; all mean "not exportable"
        raise UserError(
            f"the {name} detector cannot be exported to ONNX ({_reason(exc)})"
        ) from None
    opset = next(
        (int(o.version) for o in program.model_proto.opset_import if o.domain in ("", "ai.onnx")),
        0,
    )
    if not onnxruntime_available():
        reason = f"onnxruntime is not installed ({INSTALL_HINT})"
        return OnnxCheck(path.name, opset, checked=False, skipped=reason)
    return _compare(model, path, opset, gen, name)


def _compare(
    model: torch.nn.Module, path: Path, opset: int, gen: torch.Generator, name: str
) -> OnnxCheck:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    size = int(model.size)
    diff, scale = 0.0, 1.0
    for b in CHECK_BATCHES:
        x = _random_images(b, size, gen)
        with torch.no_grad():
            ref = model(x).float().numpy()
        got = session.run(["logits"], {"images": x.numpy()})[0]
        if got.shape != ref.shape or not np.all(np.isfinite(got)):
            raise UserError(
                f"the {name} detector's ONNX graph gives {got.shape} logits (finite: "
                f"{bool(np.all(np.isfinite(got)))}) where PyTorch gives {ref.shape}; not exported"
            )
        diff = max(diff, float(np.max(np.abs(got.astype(np.float64) - ref))))
        scale = max(scale, float(np.max(np.abs(ref))))
    if not diff <= TOLERANCE * scale:
        raise UserError(
            f"the {name} detector's ONNX graph differs from PyTorch: max |onnx - torch| = "
            f"{diff:.3g} > {TOLERANCE:g} x logit scale {scale:.3g}; not exported"
        )
    return OnnxCheck(
        path.name,
        opset,
        checked=True,
        max_abs_diff=diff,
        logit_scale=scale,
        n_images=sum(CHECK_BATCHES),
        batches=CHECK_BATCHES,
    )


__all__ = ["OnnxCheck", "TOLERANCE", "export_onnx", "onnxruntime_available", "require_onnx"]
