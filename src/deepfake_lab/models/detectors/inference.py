"""The fast inference copy of a detector: batch-norm folded into the convolutions and
channels-last memory layout.

Every place that turns logits into decisions (validation, calibration, ``eval detector``,
``detect``) scores through this copy, so the calibrated threshold is fitted on exactly the
numbers it is later compared with: folding batch-norm changes logits in the last float bits,
which matters for images sitting on the threshold. Gradients (adversarial attacks, Grad-CAM)
go through the original module.

The copy is checked against the original on a random batch when it is built; if tracing
fails or the outputs disagree beyond float tolerance, the original layout is used instead
and the reason is recorded in ``InferenceCopy.note``.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass

import torch
import torch.fx
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from deepfake_lab.models.detectors.tta import with_tta

#: Relative tolerance of the build-time check (float32 reassociation gives ~1e-6).
_RTOL = 1e-3


class _ChannelsLast(nn.Module):
    """Runs ``net`` on channels-last input (NHWC in memory; shapes unchanged)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.contiguous(memory_format=torch.channels_last))


@dataclass
class InferenceCopy:
    """A detector prepared for scoring.

    Attributes:
        module: call it with float images ``(B, 3, H, W)`` in [-1, 1] for logits ``(B,)``;
            eval mode, no parameter needs grad.
        folded: how many batch-norm layers were folded into the convolution before them.
        note: why the fast path was not (fully) used, or "".
    """

    module: nn.Module
    folded: int = 0
    note: str = ""

    @property
    def fused(self) -> bool:
        """Whether any batch-norm was folded."""
        return self.folded > 0


def _count(model: nn.Module, kinds: tuple[type, ...]) -> int:
    return sum(isinstance(m, kinds) for m in model.modules())


def _conv_bn_pairs(module: nn.Module, prefix: str, notes: list[str]) -> list[tuple[str, str]]:
    """Qualified names of ``(Conv2d, BatchNorm2d)`` pairs where the batch-norm reads only that
    convolution's output and each module is called once, found by ``torch.fx`` tracing.

    Where tracing fails (Python control flow on tensor values or shapes), the children are
    traced instead, so that one untraceable ``forward`` at the top (a resize in
    preprocessing, say) does not cost the whole backbone. Only exact ``Conv2d`` and
    ``BatchNorm2d`` types count: parametrised convs (spectral norm) are left alone.
    """
    if _count(module, (nn.BatchNorm2d,)) == 0:
        return []
    try:
        graph = torch.fx.symbolic_trace(module).graph
    except Exception as exc:  # untraceable forward: look inside each child
        notes.append(f"{type(module).__name__}.forward not traced ({type(exc).__name__})")
        return [
            pair
            for name, child in module.named_children()
            for pair in _conv_bn_pairs(child, f"{prefix}{name}.", notes)
        ]
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
    pairs = []
    for node in graph.nodes:
        if (
            node.op != "call_module"
            or type(module.get_submodule(node.target)) is not nn.BatchNorm2d
        ):
            continue
        src = node.args[0]
        if (
            isinstance(src, torch.fx.Node)
            and src.op == "call_module"
            and type(module.get_submodule(src.target)) is nn.Conv2d
            and len(src.users) == 1
            and calls[src.target] == calls[node.target] == 1
        ):
            pairs.append((prefix + src.target, prefix + node.target))
    return pairs


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


def _fold_batchnorm(model: nn.Module, notes: list[str]) -> int:
    """Fold every traceable conv+bn pair of an eval-mode ``model`` in place (the conv takes
    the batch-norm's affine map, the batch-norm becomes ``Identity``); the module tree and
    its methods stay as they were. Returns how many were folded."""
    pairs = _conv_bn_pairs(model, "", notes)
    for conv_name, bn_name in pairs:
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        _replace(model, conv_name, fuse_conv_bn_eval(conv, bn))
        _replace(model, bn_name, nn.Identity())
    return len(pairs)


def inference_copy(
    model: nn.Module, check_size: int | None = None, tta: str = "none"
) -> InferenceCopy:
    """A scoring copy of ``model``: eval mode, batch-norm folded into the convolutions,
    channels-last; the original is left untouched.

    Args:
        model: a detector; its current weights are copied.
        check_size: input resolution of the build-time equality check (default
            ``model.size``).
        tta: the test-time view the copy scores with (:mod:`.tta`: ``none`` or ``flip``).

    Returns:
        The copy, or a plain eval-mode copy when nothing would help (no convolutions).
    """
    copied = _inference_copy(model, check_size)
    copied.module = with_tta(copied.module, tta)
    return copied


def _inference_copy(model: nn.Module, check_size: int | None) -> InferenceCopy:
    base = copy.deepcopy(model).eval().requires_grad_(False)
    if _count(base, (nn.Conv2d,)) == 0:
        return InferenceCopy(base, note="no convolutions")
    device = next(base.parameters()).device
    notes: list[str] = []
    fused = copy.deepcopy(base)
    folded = _fold_batchnorm(fused, notes)
    fast = _ChannelsLast(fused.to(memory_format=torch.channels_last)).eval()
    size = check_size or int(getattr(model, "size", 32))
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(2, 3, size, size, generator=g) * 2 - 1).to(device)
    with torch.no_grad():
        ref, got = base(x).float(), fast(x).float()
    tol = _RTOL * (1 + ref.abs().max().item())
    if not torch.allclose(ref, got, rtol=0, atol=tol):
        # Never score with a copy that disagrees with the trained network.
        diff = (ref - got).abs().max().item()
        return InferenceCopy(base, note=f"fast copy disagreed by {diff:.3g}")
    return InferenceCopy(fast, folded, "; ".join(notes))
