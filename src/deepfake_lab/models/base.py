"""The contract every generator and discriminator implements; the training loop uses only this.

Images are float tensors ``(B, 3, size, size)`` in [-1, 1]. Constructors take plain typed
keyword arguments (never config objects), so that ``Registry.build`` can record them and an
export can rebuild the model from JSON alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from torch import Tensor, nn

from deepfake_lab.errors import UserError
from deepfake_lab.sharded_random import RandomSource


class Generator(nn.Module):
    """Maps latent codes to images.

    Attributes:
        size: output resolution in pixels (square images).
        z_dim: length of the latent code.
    """

    size: int
    z_dim: int
    #: Whether the architecture can train with progressive resolution (``set_resolution``).
    supports_progressive: ClassVar[bool] = False

    def __init__(self, size: int, z_dim: int) -> None:
        super().__init__()
        self.size = size
        self.z_dim = z_dim
        self.res, self.alpha = size, 1.0

    def set_resolution(self, res: int, alpha: float = 1.0) -> None:
        """Progressive training: compute only up to ``res`` px, that resolution weighted by
        ``alpha`` against the one below (fade-in); outputs keep ``size`` px (nearest-upsampled).
        Only architectures with ``supports_progressive`` honour it."""
        self.res, self.alpha = int(res), float(alpha)

    def forward(self, z: Tensor) -> Tensor:
        """Generate images.

        Args:
            z: latents ``(B, z_dim)``, normally standard normal.

        Returns:
            Images ``(B, 3, size, size)`` in [-1, 1].
        """
        raise NotImplementedError

    def set_noise_source(self, source: RandomSource) -> None:
        """Where the network's own training-mode randomness (noise inputs, style mixing) is
        drawn from: torch's global generator (None, the default) or the trainer's stream, which
        data-parallel training needs so that it draws for the whole global batch (see
        :mod:`deepfake_lab.sharded_random`). Layers that draw declare ``noise_source``."""
        for m in self.modules():
            if hasattr(m, "noise_source"):
                m.noise_source = source

    def sample(self, z: Tensor, truncation: float = 1.0) -> Tensor:
        """Images with the truncation trick (psi = ``truncation`` in [0, 1]; 1: none).

        Generators without a mapping network pull z towards the mean of its prior (zero);
        those with one (``stylegan2``) pull w towards its running mean instead.
        """
        return self(z * truncation)

    def autoencode(self, x: Tensor, generator: RandomSource) -> tuple[Tensor, Tensor] | None:
        """Encode and decode real images, for generators that are autoencoders (``vae``).

        The trainer adds the reconstruction and KL terms when this returns something; plain
        generators return None and draw nothing from ``generator``.

        Args:
            x: real images ``(B, 3, size, size)`` in [-1, 1].
            generator: the source of the posterior samples.

        Returns:
            ``(reconstructions (B, 3, size, size) in [-1, 1], KL to the prior per image (B,))``
            or None.
        """
        return None


class Discriminator(nn.Module):
    """Scores images as real (high logit) or fake (low logit).

    Attributes:
        size: input resolution in pixels (square images).
    """

    size: int
    #: Whether the architecture can train with progressive resolution (``set_resolution``).
    supports_progressive: ClassVar[bool] = False

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.res, self.alpha = size, 1.0

    def set_resolution(self, res: int, alpha: float = 1.0) -> None:
        """Progressive training: read inputs at ``res`` px (they arrive nearest-upsampled to
        ``size``), faded in over the resolution below by ``alpha``."""
        self.res, self.alpha = int(res), float(alpha)

    def forward(self, x: Tensor) -> Tensor:
        """Score images.

        Args:
            x: images ``(B, 3, size, size)`` in [-1, 1].

        Returns:
            Raw logits ``(B,)`` (no sigmoid).
        """
        raise NotImplementedError

    def forward_real(self, x: Tensor, generator: RandomSource) -> tuple[Tensor, Tensor | None]:
        """Score real images and compute any auxiliary self-supervised loss in one pass.

        The default has no auxiliary loss. Architectures with one (FastGAN's reconstruction
        decoders) override this to share the trunk's features between the two. Overrides must
        draw every random number from ``generator`` (never the global RNG), so that a resumed
        run repeats exactly.

        Args:
            x: real (possibly augmented) images ``(B, 3, size, size)`` in [-1, 1].
            generator: the source of any randomness.

        Returns:
            Logits ``(B,)`` and a scalar loss whose gradient reaches D's parameters (or None).
        """
        return self(x), None

    def features(self, x: Tensor) -> list[Tensor]:
        """Intermediate activations ``[(B, C_i, H_i, W_i), ...]`` of ``x``, shallow to deep: the
        output of every activation layer (what feature matching compares)."""
        taps: list[Tensor] = []
        acts = [m for m in self.modules() if isinstance(m, (nn.LeakyReLU, nn.ReLU, nn.GLU))]
        hooks = [m.register_forward_hook(lambda _m, _i, out: taps.append(out)) for m in acts]
        try:
            self(x)
        finally:
            for h in hooks:
                h.remove()
        return [t for t in taps if t.dim() == 4]


def check_size(arch: str, size: int, supported: Sequence[int]) -> None:
    """Raise a UserError unless ``size`` is one of ``supported``."""
    if isinstance(size, bool) or not isinstance(size, int) or size not in supported:
        choices = ", ".join(str(s) for s in supported)
        raise UserError(f"{arch} supports image sizes {choices} px; got {size!r}")


def check_positive(arch: str, **values: int) -> None:
    """Raise a UserError unless every keyword value is a positive int (widths, z_dim)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{arch}: {name} must be a positive integer; got {value!r}")
