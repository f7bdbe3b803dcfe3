"""Loading a deepfake detector: from a training run or checkpoint, an export folder, or a
detector with released weights (``meso4:DF``), with its calibration and input handling.

:class:`LoadedDetector` is what every scanner and evaluation scores with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit

from deepfake_lab.augment.resample import prepare_input
from deepfake_lab.errors import UserError
from deepfake_lab.hashing import weights_sha256
from deepfake_lab.metrics.calibration import Calibration
from deepfake_lab.models.detectors.inference import InferenceCopy, inference_copy
from deepfake_lab.models.detectors.registry import (
    DETECTORS,
    build_detector,
    published_detector_spec,
)
from deepfake_lab.models.detectors.tta import check_tta, with_tta
from deepfake_lab.models.export_format import (
    DETECTOR_FORMAT,
    build_model,
    is_export_folder,
    load_export,
)
from deepfake_lab.runs.checkpoint import list_checkpoints, load_checkpoint


@dataclass
class LoadedDetector:
    """A detector in eval mode with its calibration and identity.

    Attributes:
        model: the network; ``model(x)`` gives logits (B,), positive = fake.
        temperature: divide logits by this before the sigmoid.
        logit_threshold: logit at or above which an image is called fake (decisions are
            taken on logits, which do not saturate; ``threshold`` is its probability).
        calibrated: whether temperature/threshold were fitted on validation data.
        identity: name, kwargs, source path, weights fingerprint.
        reencode: images are re-encoded this way before scoring, as in training.
        native_floor: images are brought down to this side and back up before scoring, as
            every training image was (``data.native_size=floor``); None: as decoded.
        calibration: the full calibration record (with ``logit_threshold``), or None.
        fast: score through the fused, channels-last inference copy (the path calibration
            was fitted on); False scores with ``model`` itself.
        tta: the test-time view the calibration was fitted with (``none`` or ``flip``:
            the mean logit of the image and its mirror image; :mod:`.tta`).
    """

    model: torch.nn.Module
    temperature: float = 1.0
    logit_threshold: float = 0.0
    calibrated: bool = False
    identity: dict[str, Any] = field(default_factory=dict)
    reencode: str | None = None  # the re-encoding the detector was trained with (data.reencode)
    calibration: dict[str, Any] | None = None
    fast: bool = True
    native_floor: int | None = None
    tta: str = "none"
    _scorer: InferenceCopy | None = field(default=None, init=False, repr=False)

    @property
    def scorer(self) -> InferenceCopy:
        """The module ``logits`` runs (built on first use from the current weights)."""
        if self._scorer is None:
            if self.fast:
                self._scorer = inference_copy(self.model, tta=self.tta)
            else:
                net = with_tta(self.model.eval(), self.tta)
                self._scorer = InferenceCopy(net, note="fast=False")
        return self._scorer

    @property
    def differentiable(self) -> torch.nn.Module:
        """``model`` scored with the detector's test-time view, gradients flowing (what
        adversarial attacks should attack: the function the decisions are taken on)."""
        return with_tta(self.model, self.tta)

    def prepare(self, img: np.ndarray) -> np.ndarray:
        """What training did to an image before the network saw it, done to a uint8
        (size, size, 3) crop: the native-size floor, then the re-encoding."""
        return prepare_input(img, self.native_floor, self.reencode)

    @property
    def size(self) -> int:
        return int(self.model.size)

    @property
    def model_id(self) -> str:
        """``name:first 12 hex digits of the weights' sha256``, as the records show it;
        ``name:WEIGHTS:digits`` for released weights (``meso4:DF:...``)."""
        name, digest = self.identity.get("name"), str(self.identity.get("weights_sha256"))[:12]
        published = self.identity.get("published")
        if published:
            return f"{name}:{published.get('variant') or published.get('file')}:{digest}"
        return f"{name}:{digest}"

    @property
    def threshold(self) -> float:
        """The decision threshold on the calibrated probability scale (for display)."""
        return float(expit(self.logit_threshold / self.temperature))

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Raw logits (B,) for float images (B, 3, H, W) in [-1, 1]; fake if >= threshold."""
        return self.scorer.module(x).float()

    def probabilities_from_logits(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated P(fake): sigmoid(logit / T)."""
        return expit(np.asarray(logits, np.float64) / self.temperature)  # no overflow


def detector_from_parts(
    model: torch.nn.Module,
    calibration: Any,
    identity: dict[str, Any],
    reencode: str | None,
    where: str,
    native_floor: Any = None,
) -> LoadedDetector:
    """A ``LoadedDetector`` from a built model and its saved calibration record.

    Args:
        model: the detector with its weights loaded (put in eval mode without grads here).
        calibration: the record saved by training (``Calibration.to_dict()`` plus
            ``logit_threshold``), or None for an uncalibrated model.
        identity: name, kwargs, source, weights_sha256.
        reencode: the training re-encoding (``data.reencode``), or None.
        where: the file named in error messages.
        native_floor: the side training floored every image to, or None.

    Raises:
        UserError: the calibration record or the native floor is invalid.
    """
    model.eval().requires_grad_(False)
    floor = _check_native_floor(native_floor, int(model.size), where)
    if not calibration:
        return LoadedDetector(model, identity=identity, reencode=reencode, native_floor=floor)
    try:
        cal = Calibration.from_dict(calibration)
        logit_threshold = float(calibration["logit_threshold"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UserError(f"{where}: invalid calibration record ({exc}); recalibrate") from None
    if math.isnan(logit_threshold):
        raise UserError(f"{where}: the calibration's logit_threshold is NaN; recalibrate")
    return LoadedDetector(
        model,
        cal.temperature,
        logit_threshold,
        True,
        identity,
        reencode,
        dict(calibration),
        native_floor=floor,
        tta=check_tta(calibration.get("tta"), where),
    )


def _check_native_floor(value: Any, size: int, where: str) -> int | None:
    # From files that may come from anyone: an int between 1 and the input size, or None.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= size:
        raise UserError(
            f"{where}: native_floor must be a whole number of px in 1-{size}, got {value!r}"
        )
    return value


def run_checkpoint(source: Path) -> Path:
    """The checkpoint a run folder stands for: ``checkpoints/best.pt`` (a detector run's
    calibrated one, or a GAN run's best by its metrics), else the newest checkpoint; a file
    is itself."""
    if source.is_file():
        return source
    for candidate in (source / "checkpoints" / "best.pt", source / "best.pt"):
        if candidate.is_file():
            return candidate
    ckpts = list_checkpoints(source / "checkpoints")
    if ckpts:
        return ckpts[-1]
    raise UserError(
        f"no checkpoint found in {source} (expected checkpoints/best.pt, a .pt "
        "checkpoint or an export folder)"
    )


def _published_names() -> str:
    names = []
    for name in DETECTORS.names():
        sets = getattr(DETECTORS.get(name), "published_weights", ())
        if sets:
            names += [name] + [f"{name}:{w}" for w in sets[1:]]
    return ", ".join(names)


def load_published_detector(
    name: str, weights: str | None = None, device: str | torch.device = "cpu"
) -> LoadedDetector:
    """A registered detector with released weights, as published: no training, no
    calibration (T = 1, threshold 0.5).

    Args:
        name: registry name whose class lists ``published_weights`` (``meso4``, ...).
        weights: one of them (default: the first), or the path of a weights file the
            constructor's ``weights`` argument reads.
        device: where to put the model.

    Returns:
        The detector; its identity names the weights file, its sha256 and origin under
        ``published``, and ``model_id`` reads ``name:WEIGHTS:fingerprint``.

    Raises:
        UserError: unknown weights, or a file that is missing and cannot be downloaded.
    """
    choices = tuple(getattr(DETECTORS.get(name), "published_weights", ()))
    if not choices:
        raise UserError(f"detector {name!r} has no released weights; train one first")
    model = build_detector(name, weights=weights or choices[0]).to(device)
    info = dict(getattr(model, "weights_info", None) or {})
    identity = {
        "name": name,
        "kwargs": dict(model.init_kwargs),
        "source": info.get("path") or str(weights),
        "weights_sha256": weights_sha256(model.state_dict()),
        "published": info,
    }
    return detector_from_parts(model, None, identity, None, f"{name}:{weights}")


#: The detector ``detect`` answers with when no model is named: MesoNet Meso4 with the
#: authors' released Deepfake weights (Apache-2.0), fetched once into the cache (sha256
#: checked). Uncalibrated and trained on one face-swap method: a first answer, not a verdict.
DEFAULT_DETECTOR = "meso4:DF"


def is_detector_source(text: str | Path) -> bool:
    """Whether ``text`` names a detector: a run folder, checkpoint, export folder, or a
    released detector (``meso4:DF``), as :func:`load_detector` reads them."""
    if published_detector_spec(text) is not None:
        return True
    path = Path(text)
    if path.is_file():
        return path.suffix == ".pt"
    if path.is_dir():
        return (
            is_export_folder(path)
            or (path / "checkpoints" / "best.pt").is_file()
            or (path / "best.pt").is_file()
        )
    return False


def load_detector(source: str | Path, device: str | torch.device = "cpu") -> LoadedDetector:
    """Load a detector from a run folder, a checkpoint, an export folder, or the name of a
    detector with released weights (``NAME`` or ``NAME:WEIGHTS``, when no such path exists;
    see ``load_published_detector``)."""

    src = Path(source)
    if not src.exists():
        spec = published_detector_spec(source)
        if spec is not None:
            return load_published_detector(*spec, device=device)
        raise UserError(
            f"detector not found: {src} (give a run folder, checkpoint or export, or a "
            f"released detector: {_published_names()})"
        )
    if src.is_dir() and is_export_folder(src):
        return load_detector_export(src, device)
    ckpt_path = run_checkpoint(src)
    state = load_checkpoint(ckpt_path)
    if state.get("kind") != "detector":
        raise UserError(
            f"{ckpt_path} is not a detector checkpoint (a GAN run? use --init to "
            "start a detector from its discriminator)"
        )
    arch = state["arch"]
    if arch["name"] not in DETECTORS:
        raise UserError(f"unknown detector {arch['name']!r} in {ckpt_path}")
    # Bounded and shape-checked like an export: a checkpoint may come from anyone too.
    model = build_model(DETECTORS, arch["name"], arch["kwargs"], state["model"], str(ckpt_path))
    model.to(device)
    identity = {
        "name": arch["name"],
        "kwargs": arch["kwargs"],
        "source": str(ckpt_path),
        "weights_sha256": weights_sha256(state["model"]),
    }
    reencode = state.get("config", {}).get("data", {}).get("reencode")
    return detector_from_parts(
        model,
        state.get("calibration"),
        identity,
        reencode,
        str(ckpt_path),
        native_floor=state.get("native_floor"),
    )


def load_detector_export(src: str | Path, device: str | torch.device = "cpu") -> LoadedDetector:
    """Load a detector export folder (:func:`load_detector` calls this).

    Raises:
        UserError: not a detector export, damaged or tampered files (fingerprint mismatch),
            unknown architecture, arguments out of bounds or not fitting the weights (checked
            before anything is allocated), or an invalid calibration; always one line.
    """
    src = Path(src)
    required = ("name", "kwargs", "weights_sha256")
    meta, model = load_export(src, DETECTOR_FORMAT, required, DETECTORS, "name")
    identity = {
        "name": meta["name"],
        "kwargs": meta["kwargs"],
        "source": str(src),
        "weights_sha256": meta["weights_sha256"],
    }
    return detector_from_parts(
        model.to(device),
        meta.get("calibration"),
        identity,
        meta.get("reencode"),
        str(src),
        native_floor=meta.get("native_floor"),
    )


def fusion_verdicts(
    det: LoadedDetector, x: torch.Tensor, logits: torch.Tensor
) -> list[tuple[str, dict[str, Any]]] | None:
    """For a fusion detector: per image ``(label, fields)``, the label ``fake`` / ``real`` /
    ``uncertain`` and the fields ``reason``, ``ood`` and ``members`` (each member's
    P(fake) and label at its own threshold); None for any other detector."""
    model = det.model
    if not hasattr(model, "analyse"):
        return None
    a = model.analyse(x)
    labels = model.verdict(a["z"], a["ood"], logits.to(a["z"].device), det.logit_threshold)
    out = []
    for (label, reason), z, ood in zip(labels, a["z"].tolist(), a["ood"].tolist(), strict=True):
        members = {}
        for info, zi in zip(model.member_info, z, strict=True):
            t, thr = info["temperature"], info["logit_threshold"]
            p = float(expit((zi * t + thr) / t))  # the member's own calibrated P(fake)
            members[info["id"]] = {"probability": p, "label": "fake" if zi >= 0 else "real"}
        out.append((label, {"reason": reason, "ood": float(ood), "members": members}))
    return out
