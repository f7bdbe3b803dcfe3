"""A trained GAN discriminator as a detector: transfer from the adversarial game.

A discriminator has spent its training telling our real faces from our generator's fakes, so
its trunk is a natural starting point (Wang et al., CVPR 2020, observe that such features
transfer between generators when trained with augmentation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from deepfake_lab.errors import UserError
from deepfake_lab.models.detectors.base import Detector
from deepfake_lab.models.detectors.registry import DETECTORS
from deepfake_lab.models.registry import build_discriminator

#: FastGAN's self-supervised decoders: they only serve D's reconstruction loss in GAN training.
_UNUSED_SUBMODULES = ("decoder_whole", "decoder_part")


def gan_d_kwargs_from_checkpoint(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """The ``gan-d`` constructor arguments that match a GAN training checkpoint's discriminator.

    Args:
        ckpt: a GAN training checkpoint, with
            ``ckpt["arch"]["discriminator"] = {"name": ..., "kwargs": {...}}``.

    Returns:
        ``{"arch", "size", "channels", "max_channels"}`` for ``build_detector("gan-d", ...)``
        (``channels`` None when the checkpoint used the architecture's default).

    Raises:
        UserError: the checkpoint does not describe a discriminator.
    """
    try:
        entry = ckpt["arch"]["discriminator"]
        name, kwargs = entry["name"], dict(entry["kwargs"])
        size = kwargs["size"]
    except (KeyError, TypeError, ValueError):
        raise UserError(
            "this checkpoint does not describe a GAN discriminator (no arch.discriminator "
            "name/kwargs with a size); pass a checkpoint written by `deepfake-lab train gan`"
        ) from None
    return {
        "arch": name,
        "size": size,
        "channels": kwargs.get("channels"),
        "max_channels": kwargs.get("max_channels", 512),
    }


@DETECTORS.register("gan-d")
class GanDDetector(Detector):
    """``build_discriminator(arch, ...)`` with its logit negated.

    Sign: a GAN discriminator scores real images high; a detector scores fakes high. So the
    detector's logit is ``-D(x)``, and a discriminator's sigmoid(D) = P(real) becomes
    sigmoid(-D) = P(fake) without retraining.

    Only D's logit path is kept: FastGAN's reconstruction decoders are removed from the
    module (they would be parameters without gradients; ``init_from`` reports their source
    tensors as unused). ``forward_real`` of the wrapped D is therefore unavailable.

    Head: FastGAN's logit head (1x1 conv, BatchNorm, LeakyReLU, 4x4 conv); for other
    architectures (DCGAN) the last layer with parameters (the final 4x4 conv). Inputs must
    be ``size`` px, as for the discriminator.

    Args:
        arch: discriminator architecture ("fastgan" or "dcgan").
        size: input resolution in pixels (one the architecture supports).
        channels: the architecture's width argument; None for its default.
        max_channels: cap on any layer's width.
    """

    def __init__(
        self,
        arch: str = "fastgan",
        size: int = 64,
        channels: int | None = None,
        max_channels: int = 512,
    ) -> None:
        super().__init__(size)
        kwargs: dict[str, Any] = {"size": size, "max_channels": max_channels}
        if channels is not None:
            kwargs["channels"] = channels
        self.arch = arch
        self.d = build_discriminator(arch, **kwargs)
        for name in _UNUSED_SUBMODULES:
            if hasattr(self.d, name):
                delattr(self.d, name)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, 3, size, size)`` in [-1, 1] -> logits ``-D(x)``, ``(B,)`` (+ = fake)."""
        return -self.d(x)

    def head_modules(self) -> list[nn.Module]:
        head = getattr(self.d, "head", None)
        if isinstance(head, nn.Module):
            return [head]
        leaves = [m for m in self.d.modules() if any(True for _ in m.parameters(recurse=False))]
        return leaves[-1:]

    def gradcam_layer(self) -> nn.Module | None:
        d: Any = self.d
        if self.arch == "fastgan":  # the 8x8 map the head reads (after skip-layer excitation)
            return d.sles["sle64to8"] if "sle64to8" in d.sles else d.downs["down8"]
        if self.arch == "dcgan":  # the 4x4 map before the final conv
            return d.main[-2]
        return None

    def _source_keys(self, key: str) -> tuple[str, ...]:
        # A GAN checkpoint's "D" state names D's tensors without our "d." prefix.
        return (key, key.removeprefix("d."))
