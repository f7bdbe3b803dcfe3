"""Resolution history: were the real and the fake images of a training set upscaled alike?

Every image is decoded to the detector's size (centre crop, then resize). An image whose
native short side is below that size is *upscaled*, which blurs it in a characteristic way;
one above it is *downscaled*, which keeps it sharp. When the classes differ here (fakes from a
64 px generator against real photos), a detector scores perfectly by reading the resize and
learns nothing about fakery. :func:`resolution_history` reads the native sizes from the
file headers (no pixel is decoded) and :func:`check_resolution` refuses such a set, says
which sources differ, and names the ways out:

* ``data.native_size=floor``: bring every image of both classes down to the smallest native
  side in the set and back up (:func:`deepfake_lab.augment.resample.to_native_floor`), so all
  share one history (and lose the detail the others never had);
* generating the fakes at the detector's size (``data zoo`` does; ``generate`` where the
  generator allows it);
* ``data.native_size=ignore``: train anyway (the warning stays in the log).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from deepfake_lab.data.detection import FAKE, REAL, DetectionSample
from deepfake_lab.errors import UserError

#: An image counts as upscaled when its native short side is below this share of the size.
UPSCALED_BELOW = 0.95
#: Classes differ when their shares of upscaled images differ by more than this ...
SHARE_TOLERANCE = 0.1
#: ... or when the median native side (capped at the size) differs by more than this factor.
SIDE_TOLERANCE = 1.25

NATIVE_SIZE_MODES = ("check", "floor", "ignore")


@dataclass(frozen=True)
class SourceHistory:
    """Native sizes of one source (``real`` or a fake source) relative to the target size.

    Attributes:
        source: source name.
        label: 0 real, 1 fake.
        n: files whose header could be read.
        median_side: median native short side, px.
        min_side: smallest native short side, px.
        upscaled: share of files with a native short side below the target size.
    """

    source: str
    label: int
    n: int
    median_side: int
    min_side: int
    upscaled: float

    def describe(self, size: int) -> str:
        return (
            f"{self.source}: native short side median {self.median_side} px "
            f"(min {self.min_side}), {100 * self.upscaled:.0f}% upscaled to {size} px"
        )


@dataclass(frozen=True)
class ResolutionHistory:
    """Per-source and per-class native sizes of a training set at a target ``size``."""

    size: int
    sources: list[SourceHistory]
    classes: dict[int, SourceHistory]

    @property
    def floor_side(self) -> int:
        """The smallest native short side over both classes, capped at ``size``."""
        return min([self.size] + [s.min_side for s in self.classes.values()])

    def mismatch(self) -> str | None:
        """One sentence on how the classes differ in resolution history, or None."""
        real, fake = self.classes.get(REAL), self.classes.get(FAKE)
        if real is None or fake is None:
            return None
        share = abs(real.upscaled - fake.upscaled) > SHARE_TOLERANCE
        r, f = min(real.median_side, self.size), min(fake.median_side, self.size)
        side = max(r, f) / max(1, min(r, f)) > SIDE_TOLERANCE
        if not (share or side):
            return None
        odd = [
            s.describe(self.size)
            for s in self.sources
            if s.label == FAKE
            and (
                abs(s.upscaled - real.upscaled) > SHARE_TOLERANCE
                or max(r, min(s.median_side, self.size))
                / max(1, min(r, min(s.median_side, self.size)))
                > SIDE_TOLERANCE
            )
        ]
        return (
            f"real and fake images differ in resolution history at {self.size} px: "
            f"{real.describe(self.size)}; {'; '.join(odd) or fake.describe(self.size)}. "
            "A detector can learn the resize instead of the fakery"
        )


def _short_side(path: object) -> int | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bomb warnings: the decoder enforces limits
            with Image.open(path) as im:  # type: ignore[arg-type]
                return int(min(im.size))
    except Exception:  # an unreadable header: the decoder will skip and report the file
        return None


def resolution_history(
    samples: Sequence[DetectionSample], size: int, max_per_source: int = 2000
) -> ResolutionHistory:
    """Native short sides per source and per class, from at most ``max_per_source`` file
    headers per source (evenly spread over its list)."""
    by_source: dict[tuple[int, str], list[DetectionSample]] = defaultdict(list)
    for s in samples:
        by_source[(s.label, s.source)].append(s)
    sides: dict[tuple[int, str], list[int]] = {}
    for key, members in by_source.items():
        if len(members) > max_per_source:
            pick = np.linspace(0, len(members) - 1, max_per_source).round().astype(int)
            members = [members[int(i)] for i in pick]
        sides[key] = [v for v in (_short_side(m.path) for m in members) if v is not None]

    def summary(source: str, label: int, values: list[int]) -> SourceHistory:
        arr = np.asarray(values)
        return SourceHistory(
            source,
            label,
            len(arr),
            int(np.median(arr)),
            int(arr.min()),
            float(np.mean(arr < UPSCALED_BELOW * size)),
        )

    sources = [summary(src, label, v) for (label, src), v in sorted(sides.items()) if len(v) > 0]
    classes = {}
    for label, name in ((REAL, "real"), (FAKE, "fake")):
        pooled = [x for (lab, _), v in sides.items() if lab == label for x in v]
        if pooled:
            classes[label] = summary(name, label, pooled)
    return ResolutionHistory(size, sources, classes)


def check_resolution(
    samples: Sequence[DetectionSample], size: int, mode: str = "check"
) -> tuple[ResolutionHistory, str | None]:
    """The set's resolution history and, when the classes differ, a warning sentence.

    Args:
        samples: the training set (both classes).
        size: the detector's input size.
        mode: ``check`` refuses a mismatch, ``floor`` and ``ignore`` return it as a warning
            (``floor``: the caller brings every image to :attr:`ResolutionHistory.floor_side`).

    Raises:
        UserError: ``mode="check"`` and the classes differ; the message names the sources
            and the ways out.
    """
    if mode not in NATIVE_SIZE_MODES:
        raise UserError(f"data.native_size must be one of {', '.join(NATIVE_SIZE_MODES)}")
    history = resolution_history(samples, size)
    problem = history.mismatch()
    if problem and mode == "check":
        raise UserError(
            f"{problem}. Generate the fakes at {size} px (e.g. `deepfake-lab data zoo`), or "
            f"--set data.native_size=floor (every image of both classes brought down to "
            f"{history.floor_side} px and back up first), or --set data.native_size=ignore"
        )
    return history, problem
