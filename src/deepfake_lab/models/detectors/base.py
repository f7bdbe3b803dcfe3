"""The contract every detector implements, with the behaviour they share (loss, calibrated
probabilities, freezing, initialisation from other checkpoints).

Images are float tensors ``(B, 3, H, W)`` in [-1, 1]; a detector returns one raw logit per
image, positive meaning *fake*. Constructors take plain typed keyword arguments (never config
objects), so that ``Registry.build`` records them as ``init_kwargs`` and an export can rebuild
the model from JSON alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfake_lab.color import LUMA_WEIGHTS
from deepfake_lab.errors import UserError
from deepfake_lab.models.base import check_positive

#: Accepted ``freeze`` modes (see ``Detector.freeze``).
FREEZE_MODES = ("none", "backbone")
# Prefixes that wrappers add to every key: DataParallel/DDP and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def luma(x: Tensor) -> Tensor:
    """ITU-R BT.601 luma of float images ``(B, 3, H, W)`` -> float32 ``(B, 1, H, W)``, on the
    input's scale. Call it outside autocast: the detectors that use it need float32."""
    weights = x.new_tensor(LUMA_WEIGHTS, dtype=torch.float32).view(1, 3, 1, 1)
    return (x.float() * weights).sum(dim=1, keepdim=True)


@dataclass
class InitReport:
    """What ``Detector.init_from`` did, key by key (names are this detector's state keys,
    except ``unused``, which names keys of the source state).

    Attributes:
        loaded: keys copied from the source.
        missing: keys with no counterpart in the source (left as initialised).
        mismatched: keys whose counterpart has another shape (left as initialised).
        unused: source keys that initialised nothing.
    """

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"loaded {len(self.loaded)} tensors; {len(self.missing)} missing, "
            f"{len(self.mismatched)} with another shape (kept as initialised); "
            f"{len(self.unused)} source tensors unused"
        )


def _strip_wrappers(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key.removeprefix(prefix), True
    return key


class Detector(nn.Module):
    """Scores images as fake (high logit) or real (low logit).

    Subclasses implement ``forward`` and ``head_modules`` (the layers that map features to the
    logit); everything else is the *backbone*. They override ``gradcam_layer`` when they have
    a spatial feature map, and ``_source_keys`` when checkpoints of another model name the
    same tensors differently.

    Attributes:
        size: nominal input resolution in pixels (square images); models with global pooling
            accept other sizes too.
        any_size: whether inputs of sizes other than ``size`` work (class attribute).
        frozen: the current ``freeze`` mode.
        load_only_kwargs: constructor arguments that only load external files (e.g. a
            ``pretrained`` path): ``rebuild_kwargs`` sets them to None, since the state dict
            then carries the weights.
        published_weights: names of released weight sets that the constructor's ``weights``
            argument accepts (the first is the default), so that ``load_detector("NAME")``
            or ``load_detector("NAME:SET")`` gives a ready detector without training;
            empty for detectors that must be trained.
    """

    size: int
    any_size: ClassVar[bool] = False
    load_only_kwargs: ClassVar[tuple[str, ...]] = ()
    published_weights: ClassVar[tuple[str, ...]] = ()

    def __init__(self, size: int) -> None:
        super().__init__()
        check_positive(type(self).__name__, size=size)
        self.size = size
        self.frozen = "none"

    # -- what subclasses provide -----------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Score images.

        Args:
            x: float images ``(B, 3, H, W)`` in [-1, 1].

        Returns:
            Raw logits ``(B,)``, positive = fake (no sigmoid).
        """
        raise NotImplementedError

    def head_modules(self) -> list[nn.Module]:
        """The modules that form the classification head (trainable under ``freeze``)."""
        raise NotImplementedError

    def gradcam_layer(self) -> nn.Module | None:
        """The module whose output activations ``(B, C, h, w)`` Grad-CAM should weight (the
        last convolutional stage), or None for detectors without a spatial feature map."""
        return None

    def _source_keys(self, key: str) -> tuple[str, ...]:
        """Names under which a source state dict may hold this detector's state ``key``,
        in order of preference (``init_from``). The default: the same name."""
        return (key,)

    # -- shared behaviour ------------------------------------------------------------------
    def loss(
        self, logits: Tensor, labels: Tensor, pos_weight: float | Tensor | None = None
    ) -> Tensor:
        """Mean binary cross-entropy with logits.

        Args:
            logits: ``(B,)`` raw scores from ``forward``.
            labels: ``(B,)`` 0 = real, 1 = fake (any dtype; converted to the logits' float).
            pos_weight: optional weight of the fake class (e.g. n_real / n_fake to balance).

        Returns:
            Scalar loss.
        """
        labels = labels.to(logits.dtype)
        if pos_weight is not None:
            pos_weight = torch.as_tensor(pos_weight, dtype=logits.dtype, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits, labels, pos_weight=pos_weight)

    def probabilities(self, x: Tensor, temperature: float = 1.0) -> Tensor:
        """Calibrated probabilities of being fake, ``sigmoid(logits / temperature)``.

        Gradients flow (adversarial attacks use them); wrap in ``torch.inference_mode`` to scan.

        Args:
            x: float images ``(B, 3, H, W)`` in [-1, 1].
            temperature: positive temperature from calibration (1 = uncalibrated).

        Returns:
            ``(B,)`` probabilities in [0, 1].
        """
        if not temperature > 0:
            raise UserError(f"temperature must be positive; got {temperature!r}")
        return torch.sigmoid(self(x) / temperature)

    def _head_ids(self) -> set[int]:
        return {id(m) for head in self.head_modules() for m in head.modules()}

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the head modules."""
        seen: set[int] = set()
        for head in self.head_modules():
            for p in head.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield p

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter outside the head (possibly none)."""
        head = {id(p) for p in self.head_parameters()}
        return (p for p in self.parameters() if id(p) not in head)

    def _backbone_leaves(self) -> list[nn.Module]:
        """Modules outside the head that do not contain any head module (so that switching
        them to eval mode cannot reach the head)."""
        head_ids = self._head_ids()
        out = []
        for m in self.modules():
            if id(m) in head_ids:
                continue
            if any(id(sub) in head_ids for sub in m.modules()):
                continue  # an ancestor of the head (e.g. the detector itself)
            out.append(m)
        return out

    def freeze(self, mode: str) -> Detector:
        """Choose which parameters train.

        Modes:
            ``"none"``: everything trains (fine-tune all of it).
            ``"backbone"``: only the head trains. Backbone parameters stop requiring grad and
                the backbone stays in eval mode whatever ``train()`` says, so BatchNorm
                running statistics (and spectral-norm power iterations) do not move: the
                backbone becomes a fixed feature extractor, as it is at inference.

        Build the optimiser from ``p for p in model.parameters() if p.requires_grad`` after
        calling this. Returns ``self``.
        """
        if mode not in FREEZE_MODES:
            raise UserError(
                f"unknown freeze mode {mode!r}; choose one of: {', '.join(FREEZE_MODES)}"
            )
        head = {id(p) for p in self.head_parameters()}
        for p in self.parameters():
            p.requires_grad_(mode == "none" or id(p) in head)
        self.frozen = mode
        return self.train(self.training)

    def train(self, mode: bool = True) -> Detector:
        super().train(mode)
        if getattr(self, "frozen", "none") == "backbone":
            for m in self._backbone_leaves():
                m.training = False  # leaves contain no head module, so no recursion needed
        return self

    def init_from(self, state: Mapping[str, Any], strict: bool = False) -> InitReport:
        """Copy matching tensors from another detector's or a GAN discriminator's state dict.

        A tensor is copied when the source holds it under one of ``_source_keys(key)`` (after
        dropping ``module.`` / ``_orig_mod.`` wrapper prefixes) with the same shape; all
        others keep their current values.

        Args:
            state: a state dict (e.g. a detector checkpoint's model state, or a GAN training
                checkpoint's ``"D"`` entry).
            strict: also fail when any tensor of this detector is missing or has another shape
                (source tensors that initialise nothing are always allowed).

        Returns:
            An ``InitReport`` of loaded / missing / mismatched / unused keys.

        Raises:
            UserError: nothing matched (not counting BatchNorm's ``num_batches_tracked``), or
                ``strict`` and something did not.
        """
        source = {_strip_wrappers(k): v for k, v in state.items() if isinstance(v, Tensor)}
        report = InitReport()
        new: dict[str, Tensor] = {}
        used: set[str] = set()
        for key, target in self.state_dict().items():
            src = next((k for k in self._source_keys(key) if k in source), None)
            if src is None:
                # BatchNorm's batch counter predates many checkpoints (the released CIFAR
                # weights) and only matters with momentum=None: absent is not "missing".
                if not key.endswith("num_batches_tracked"):
                    report.missing.append(key)
            elif source[src].shape != target.shape:
                report.mismatched.append(key)
            else:
                new[key] = source[src]
                used.add(src)
                report.loaded.append(key)
        report.unused = sorted(set(source) - used)
        if not any(not k.endswith("num_batches_tracked") for k in new):
            name = getattr(self, "registry_name", type(self).__name__)
            raise UserError(
                f"the checkpoint state has no tensor matching {name} (by name and shape); "
                f"was it saved from another kind of model?"
            )
        if strict and (report.missing or report.mismatched):
            bad = (report.missing + report.mismatched)[:5]
            raise UserError(f"strict init: {report}; first not loaded: {', '.join(bad)}")
        self.load_state_dict(new, strict=False)
        return report

    def rebuild_kwargs(self) -> dict[str, Any]:
        """``init_kwargs`` with load-only arguments set to None: rebuilds the architecture
        without reading external files (load the saved state dict into it)."""
        kwargs = dict(getattr(self, "init_kwargs", {}))
        for key in self.load_only_kwargs:
            if key in kwargs:
                kwargs[key] = None
        return kwargs
