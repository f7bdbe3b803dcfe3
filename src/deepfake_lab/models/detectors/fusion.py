"""Fusion: a calibrated stacker over member detectors that can say "uncertain".

Each member scores the image at its own size and its logit is put on a common scale with
its own calibration, ``z = (logit - logit_threshold) / temperature`` (0 at the member's
decision threshold). The fusion logit is a logistic regression over the ``z`` of all
members (fitted on held-out data by :func:`deepfake_lab.training.fusion.train_fusion`).

:meth:`FusionDetector.analyse` also returns every member's ``z`` and an out-of-distribution
score: the Mahalanobis distance (per feature dimension) of the members' globally pooled
feature maps from the images the stacker was fitted on. :meth:`FusionDetector.verdict`
turns these into ``fake`` / ``real`` / ``uncertain`` with a reason: an input unlike
anything seen in fitting, or members that confidently disagree, is *uncertain*, so that a
"real" answer on something the detector knows nothing about never looks like evidence.

A fusion is a registered detector: it trains, saves, exports and scans like any other; its
members' weights are part of its state.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfake_lab.errors import UserError
from deepfake_lab.models.detectors.base import Detector
from deepfake_lab.models.detectors.registry import DETECTORS, build_detector
from deepfake_lab.models.detectors.tta import check_tta, with_tta


def resize_for(x: Tensor, size: int) -> Tensor:
    """``x`` (B, 3, H, W) in [-1, 1] at ``size`` px: area average down, bicubic up (clamped).

    The filters are the nearest torch has to the file loader's (``load_rgb``: OpenCV area
    down, Lanczos up), so that a member scores a resized input about as it scores the file.
    Some released detectors are that sensitive: MesoInception-DF called 97% of 128 px real
    FaceForensics++ faces fake when bilinearly upscaled to its 256 px, 13% when bicubically,
    2.5% when Lanczos-upscaled (docs/benchmarks.md).
    """
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    if x.shape[-1] > size:
        return F.interpolate(x, size=(size, size), mode="area")
    up = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    return up.clamp(-1.0, 1.0)


@DETECTORS.register("fusion")
class FusionDetector(Detector):
    """Logistic stacker over member detectors, with an uncertainty band.

    Args:
        size: input size in px (members get their own size from it).
        members: one ``{"name", "kwargs", "id", "temperature", "logit_threshold", "tta"}``
            per member: its registry name and constructor arguments, a label for outputs,
            and its calibration (defaults 1, 0 and ``"none"``; ``tta="flip"`` scores the
            member on each image and its mirror image and averages the two logits).
        margin: members disagree when one has ``z >= margin`` and another ``z <= -margin``;
            a member with ``|z| >= margin`` against the verdict makes it uncertain too.
        ood_threshold: OOD scores above this are "unlike the fitting data" (set by fitting;
            ``inf`` never flags).

    Buffers (set by fitting, part of the state): ``ood_mean`` (D,) and ``ood_precision``
    (D, D) of the pooled member features.
    """

    def __init__(
        self,
        size: int = 128,
        members: list[dict[str, Any]] | None = None,
        margin: float = 2.0,
        ood_threshold: float = float("inf"),
    ) -> None:
        super().__init__(size)
        if not members:
            raise UserError("a fusion needs at least one member detector")
        self.members = nn.ModuleList()
        self.member_info: list[dict[str, Any]] = []
        for i, m in enumerate(members):
            if m.get("name") == "fusion":
                raise UserError("a fusion cannot be a member of another fusion")
            det = build_detector(m["name"], **dict(m.get("kwargs") or {}))
            self.members.append(det)
            self.member_info.append(
                {
                    "name": m["name"],
                    "kwargs": det.rebuild_kwargs(),
                    "id": str(m.get("id") or f"{m['name']}#{i}"),
                    "temperature": float(m.get("temperature", 1.0)),
                    "logit_threshold": float(m.get("logit_threshold", 0.0)),
                    "tta": check_tta(m.get("tta"), f"fusion member {i}"),
                }
            )
        self.margin = float(margin)
        self.ood_threshold = float(ood_threshold)
        self.stacker = nn.Linear(len(members), 1)
        with torch.no_grad():  # until fitted: the mean of the members' calibrated logits
            self.stacker.weight.fill_(1.0 / len(members))
            self.stacker.bias.zero_()
        self.register_buffer("scale_t", torch.tensor([m["temperature"] for m in self.member_info]))
        self.register_buffer(
            "shift", torch.tensor([m["logit_threshold"] for m in self.member_info])
        )
        dim = self.feature_dim()
        self.register_buffer("ood_mean", torch.zeros(dim))
        self.register_buffer("ood_precision", torch.eye(dim))

    def rebuild_kwargs(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "members": [dict(m) for m in self.member_info],
            "margin": self.margin,
            "ood_threshold": self.ood_threshold,
        }

    @property
    def member_ids(self) -> list[str]:
        return [m["id"] for m in self.member_info]

    def _layers(self) -> list[nn.Module | None]:
        return [m.gradcam_layer() for m in self.members]  # type: ignore[operator]

    def feature_dim(self) -> int:
        """Length of the pooled feature vector (channels of every member's spatial layer)."""
        x = torch.zeros(1, 3, self.size, self.size)
        was = self.training
        self.eval()
        with torch.no_grad():
            dim = int(self.member_outputs(x)[1].shape[1])
        self.train(was)
        return dim

    def member_outputs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Member ``z`` (B, M) and pooled features (B, D) in one pass (the features of the
        images as they are, also for members scored with their mirror images too)."""
        pooled: dict[int, Tensor] = {}

        def keep(k: int, out: Tensor) -> None:  # a hook returning a tensor would replace
            # the layer's output; a flip member's layer fires on 2B images: keep the first B.
            pooled.setdefault(k, out[: x.shape[0]].float().mean(dim=(2, 3)))

        hooks = []
        for k, layer in enumerate(self._layers()):
            if layer is not None:
                hooks.append(layer.register_forward_hook(lambda _m, _i, out, k=k: keep(k, out)))
        try:
            z = self.member_z(x)
        finally:
            for h in hooks:
                h.remove()
        feats = torch.cat([pooled[k] for k in sorted(pooled)], dim=1) if pooled else z.detach()
        return z, feats

    def member_z(self, x: Tensor) -> Tensor:
        """Calibrated member logits (B, M): 0 at each member's threshold, each member
        scored with its own test-time view."""
        raw = torch.stack(
            [
                with_tta(m, info["tta"])(resize_for(x, int(m.size))).float()
                for m, info in zip(self.members, self.member_info, strict=True)
            ],
            dim=1,
        )
        return (raw - self.shift) / self.scale_t

    def forward(self, x: Tensor) -> Tensor:
        return self.stacker(self.member_z(x)).squeeze(1)

    def head_modules(self) -> list[nn.Module]:
        return [self.stacker]

    def gradcam_layer(self) -> nn.Module | None:
        return next((layer for layer in self._layers() if layer is not None), None)

    def ood_score(self, feats: Tensor) -> Tensor:
        """Squared Mahalanobis distance per feature dimension (about 1 in distribution)."""
        d = feats - self.ood_mean
        return ((d @ self.ood_precision) * d).sum(dim=1) / d.shape[1]

    @torch.no_grad()
    def analyse(self, x: Tensor) -> dict[str, Tensor]:
        """``{"logit": (B,), "z": (B, M), "ood": (B,)}`` for images (B, 3, H, W) in [-1, 1]."""
        z, feats = self.member_outputs(x)
        return {"logit": self.stacker(z).squeeze(1), "z": z, "ood": self.ood_score(feats)}

    def verdict(self, z: Tensor, ood: Tensor, logit: Tensor, logit_threshold: float) -> list:
        """Per image ``(label, reason)``: ``uncertain`` when the input is out of distribution,
        when members confidently disagree, or when one member is confident (``|z| >=
        margin``) against the stacker's verdict; else ``fake``/``real`` at
        ``logit_threshold``.

        The last rule covers a member that the stacker learnt to ignore because the fitting
        data never showed what it knows (e.g. a face-swap detector fitted on pseudo-fakes it
        cannot see): its confident "fake" must not turn into a confident "real".
        """
        out = []
        names = [m["id"] for m in self.member_info]
        for zi, oi, li in zip(z.tolist(), ood.tolist(), logit.tolist(), strict=True):
            label = "fake" if li >= logit_threshold else "real"
            against = [
                n
                for n, v in zip(names, zi, strict=True)
                if (v <= -self.margin if label == "fake" else v >= self.margin)
            ]
            if oi > self.ood_threshold:
                out.append(("uncertain", "unlike the images the fusion was fitted on"))
            elif max(zi) >= self.margin and min(zi) <= -self.margin:
                out.append(("uncertain", "members disagree"))
            elif against:
                out.append(("uncertain", f"{', '.join(against)} confidently says otherwise"))
            else:
                out.append((label, None))
        return out
