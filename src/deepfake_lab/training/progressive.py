"""Progressive resolution (Karras et al., ICLR 2018): training starts at a low resolution and
grows to the target, each new resolution faded in.

The schedule is a pure function of the images shown, so a resumed run is at the same
resolution and fade as the run it continues. Phase 0 trains at ``start`` px for
``phase_kimg``; each later phase fades the next resolution in over its first half (alpha 0
to 1) and trains it stable for its second half; the target resolution then stays.
Generator and discriminator compute only up to / from the current resolution; images keep
their full size between them (the lower resolutions nearest-upsampled), so augmentation,
sample grids and metrics are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deepfake_lab.errors import UserError


@dataclass(frozen=True)
class ProgressiveSchedule:
    """Resolutions ``start, 2 start, ..., size``, ``phase_kimg`` each."""

    start: int
    size: int
    phase_kimg: float

    def __post_init__(self) -> None:
        if self.start < 4 or self.start & (self.start - 1) or self.start > self.size:
            raise UserError(
                f"train.progressive_start must be a power of two in 4..{self.size}, "
                f"got {self.start}"
            )
        if not self.phase_kimg > 0:
            raise UserError(f"train.progressive_kimg must be above 0, got {self.phase_kimg}")

    @property
    def resolutions(self) -> list[int]:
        out, r = [], self.start
        while r <= self.size:
            out.append(r)
            r *= 2
        return out

    def at(self, nimg: int) -> tuple[int, float]:
        """``(resolution, alpha)`` after ``nimg`` images; alpha is the new resolution's weight
        (1 when it is stable)."""
        phase = nimg / (self.phase_kimg * 1000)
        res = self.resolutions
        k = min(int(phase), len(res) - 1)
        if k == 0:
            return res[0], 1.0
        frac = phase - k if int(phase) < len(res) else 1.0
        return res[k], min(1.0, 2.0 * frac)

    def describe(self) -> str:
        """One line for the log and the report."""
        steps = " -> ".join(f"{r} px" for r in self.resolutions)
        return f"progressive: {steps}, {self.phase_kimg:g} kimg a phase (fade-in: half of it)"


def faded_reals(x: torch.Tensor, res: int, alpha: float) -> torch.Tensor:
    """Real images ``(B, 3, S, S)`` as the generator can make them at ``res`` px with the
    given fade: area-downsampled to ``res`` (blended with ``res/2`` by ``1 - alpha``), then
    nearest-upsampled back to ``S``."""
    size = x.shape[-1]
    if res >= size and alpha >= 1.0:
        return x
    low = F.avg_pool2d(x, size // res) if res < size else x
    if alpha < 1.0:
        coarse = F.interpolate(F.avg_pool2d(low, 2), scale_factor=2, mode="nearest")
        low = torch.lerp(coarse, low, alpha)
    return F.interpolate(low, scale_factor=size // res, mode="nearest") if res < size else low
