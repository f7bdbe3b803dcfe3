"""Pseudo-fakes made on the fly from the real faces of a training set.

:class:`PseudoFakeSet` wraps a :class:`~deepfake_lab.data.detection.DetectionDataset`: its
first ``len(base)`` indices are the base images (reals, and real fakes when given), the next
``n_pseudo`` are *virtual* fakes, one self-blended image (:mod:`deepfake_lab.data.sbi`) of a
real face each, made anew every time it is drawn, from the generator the batch draws from
(deterministic per seed, exact on resume). Kinds (``PSEUDO_FAKES``):

- ``sbi``: the whole face blended (face swap);
- ``sbi-mouth``: the lower face only (lip sync).

Validation needs fixed images: :meth:`PseudoFakeSet.materialise` makes one pseudo-fake per
real face with a fixed seed and returns a plain dataset whose pseudo-fakes have the source
name of their kind.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from deepfake_lab.augment.resample import Compose
from deepfake_lab.augment.robustness import ImageRngs, augment_images
from deepfake_lab.data.detection import FAKE, REAL, DetectionDataset, DetectionSample
from deepfake_lab.data.sbi import RESAMPLING, self_blend
from deepfake_lab.errors import UserError
from deepfake_lab.faces.landmarks import Landmarker

#: Pseudo-fake kind -> the blend region of :func:`deepfake_lab.data.sbi.self_blend`.
PSEUDO_FAKES: dict[str, str] = {"sbi": "face", "sbi-mouth": "mouth"}

ImageAug = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _to_model(
    x: torch.Tensor, labels: list[int], device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (B, 3, S, S) -> float32 in [-1, 1] on ``device``, and the labels as float32."""
    x = x.to(device, non_blocking=True).to(torch.float32).div_(127.5).sub_(1.0)
    return x, torch.tensor(labels, dtype=torch.float32, device=device)


def check_kinds(kinds: Sequence[str]) -> list[str]:
    """The kinds, validated and without repeats (order kept).

    Raises:
        UserError: an unknown kind (the message lists the known ones).
    """
    out: list[str] = []
    for k in kinds:
        if k not in PSEUDO_FAKES:
            raise UserError(f"unknown pseudo-fake {k!r}; choose from {', '.join(PSEUDO_FAKES)}")
        if k not in out:
            out.append(k)
    return out


@dataclass
class PseudoFakeSet:
    """A detection set plus virtual pseudo-fakes of its real faces.

    Attributes:
        base: the decoded images (uint8 (N, 3, S, S)).
        kinds: pseudo-fake kinds (keys of :data:`PSEUDO_FAKES`), drawn at random per image.
        landmarks: one (K, 2) array per real image of ``base``, in ``real_index`` order.
        real_index: indices of ``base``'s real images.
        landmark_sources: per real image, which source gave its landmarks.
        paired: as in the paper, each real face drawn into a batch brings its own
            pseudo-fake along, so that within a pair the blend is the only difference; the
            set then has ``len(base)`` indices and batches grow by their count of reals.
            False: pseudo-fakes are indices of their own, drawn independently.
        resample: the blends' resampling filters, ``"bilinear"`` or ``"mixed"`` (see
            :func:`deepfake_lab.data.sbi.self_blend`).
    """

    base: DetectionDataset
    kinds: list[str]
    landmarks: list[np.ndarray]
    real_index: np.ndarray
    landmark_sources: list[str] = field(default_factory=list)
    paired: bool = True
    resample: str = "bilinear"

    def __post_init__(self) -> None:
        if self.resample not in RESAMPLING:
            raise UserError(f"unknown SBI resampling {self.resample!r}; choose from {RESAMPLING}")
        self._position = {int(i): j for j, i in enumerate(self.real_index)}

    @classmethod
    def build(
        cls,
        base: DetectionDataset,
        kinds: Sequence[str],
        landmarker: Landmarker,
        paired: bool = True,
        resample: str = "bilinear",
    ) -> PseudoFakeSet:
        """Find the landmarks of every real face of ``base`` once.

        Raises:
            UserError: no kinds, or ``base`` holds no real image.
        """
        kinds = check_kinds(kinds)
        if not kinds:
            raise UserError("pseudo-fakes need at least one kind, e.g. sbi")
        real_index = np.flatnonzero(base.labels.numpy() == REAL)
        if len(real_index) == 0:
            raise UserError("pseudo-fakes are made from real faces, and this set has none")
        hwc = base.images[torch.as_tensor(real_index)].permute(0, 2, 3, 1).numpy()
        found = [landmarker(np.ascontiguousarray(img)) for img in hwc]
        return cls(
            base, kinds, [p for p, _ in found], real_index, [s for _, s in found], paired, resample
        )

    @property
    def n_pseudo(self) -> int:
        """One virtual pseudo-fake per real face (the classes stay balanced with reals)."""
        return len(self.real_index)

    def __len__(self) -> int:
        return len(self.base) + (0 if self.paired else self.n_pseudo)

    @property
    def size(self) -> int:
        return self.base.size

    @property
    def labels(self) -> torch.Tensor:
        """Labels of the indices (paired: of the base images only)."""
        if self.paired:
            return self.base.labels.clone()
        extra = torch.full((self.n_pseudo,), FAKE, dtype=torch.int64)
        return torch.cat([self.base.labels, extra])

    def counts(self) -> dict[str, int]:
        """Images per source; the virtual ones under ``"+".join(kinds)``."""
        return {**self.base.counts(), "+".join(self.kinds): self.n_pseudo}

    def make(self, j: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
        """Pseudo-fake number ``j``: ``(image uint8 (S, S, 3), mask float32 (S, S), kind)``."""
        i = int(self.real_index[j])
        img = np.ascontiguousarray(self.base.images[i].permute(1, 2, 0).numpy())
        kind = self.kinds[int(rng.integers(len(self.kinds)))]
        fake, mask = self_blend(img, self.landmarks[j], rng, PSEUDO_FAKES[kind], self.resample)
        return fake, mask, kind

    def batch(
        self,
        indices: torch.Tensor,
        device: torch.device | str = "cpu",
        augment: ImageAug | None = None,
        rng: ImageRngs | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels at ``indices`` (see ``DetectionDataset.batch``); indices past
        ``len(base)`` are pseudo-fakes made now from ``rng``; when ``paired``, the
        pseudo-fakes of the batch's real faces follow the batch, in its order.

        ``rng`` is one generator, or one per index: then index k's image, its pseudo-fake
        (paired) and their augmentations all draw from the k-th, in that order, so that
        they do not depend on the rest of the batch.

        Raises:
            ValueError: pseudo-fakes asked for without ``rng``.
        """
        images, labels, _, gens = self._collect(indices, rng)
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        if augment is not None:
            x = augment_images(augment, x, None if rng is None else gens)  # type: ignore[arg-type]
        return _to_model(x, labels, device)

    def seam_batch(
        self,
        indices: torch.Tensor,
        device: torch.device | str = "cpu",
        augment: Compose | None = None,
        rng: ImageRngs | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`batch` (the same images from the same draws) plus where each image was
        blended: ``(x, y, seams, known)``.

        ``seams`` is float32 (B, S, S) in [0, 1], ``4 m (1 - m)`` of the blend weights ``m``
        (Face X-ray's boundary, Li et al. 2020): 1 where source and target mix half and
        half, 0 on a real face and wherever one image is untouched. The masks are moved by
        the augmentation's flips and warps (``Compose.move``, from a copy of each image's
        generator state), so they stay on their images. ``known`` (B,) bool is False for
        fakes from ``base`` (a folder of fakes: where they were edited is not known).
        """
        images, labels, masks, gens = self._collect(indices, rng)
        if augment is not None:
            if rng is None:
                raise ValueError("augmentation needs rng, the generator it draws from")
            moved_images, moved_masks = [], []
            for img, mask, g in zip(images, masks, gens, strict=True):
                assert g is not None
                # Only blends have a mask to move; a real face's boundary is zero wherever
                # its pixels go, so it costs no warp.
                snapshot = None if mask is None else copy.deepcopy(g)
                moved_images.append(augment(np.ascontiguousarray(img), g))
                moved_masks.append(None if snapshot is None else augment.move(mask, snapshot))
            images, masks = moved_images, moved_masks
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        size = x.shape[-1]
        seams = np.stack(
            [np.zeros((size, size), np.float32) if m is None else 4 * m * (1 - m) for m in masks]
        )
        # Reals are known (no boundary anywhere); fakes from ``base`` are not.
        known = torch.tensor(
            [m is not None or lab == REAL for m, lab in zip(masks, labels, strict=True)]
        )
        x, y = _to_model(x, labels, device)
        return x, y, torch.from_numpy(seams).clamp_(0, 1).to(device), known.to(device)

    def _collect(
        self, indices: torch.Tensor, rng: ImageRngs | None
    ) -> tuple[list[np.ndarray], list[int], list[np.ndarray | None], list[Any]]:
        """The batch's uint8 (S, S, 3) images (paired pseudo-fakes appended), labels, blend
        masks (float32 (S, S) for pseudo-fakes, None for ``base``'s images) and generators."""
        idx = [int(i) for i in indices]
        n_base = len(self.base)
        gens: list[np.random.Generator | None] = (
            [rng] * len(idx) if rng is None or isinstance(rng, np.random.Generator) else list(rng)
        )
        if len(gens) != len(idx):
            raise ValueError(f"{len(gens)} generators for {len(idx)} indices")
        if self.paired:
            pairs = [(n_base + self._position[i], g) for i, g in zip(idx, gens, strict=True)
                     if i in self._position]  # fmt: skip
            idx += [i for i, _ in pairs]
            gens += [g for _, g in pairs]
        if rng is None and any(i >= n_base for i in idx):
            raise ValueError("pseudo-fakes need rng, the generator they draw from")
        images: list[np.ndarray] = []
        labels: list[int] = []
        masks: list[np.ndarray | None] = []
        for i, g in zip(idx, gens, strict=True):
            if i < n_base:
                images.append(self.base.images[i].permute(1, 2, 0).numpy())
                labels.append(int(self.base.labels[i]))
                masks.append(None)
            else:
                assert g is not None
                fake, mask, _ = self.make(i - n_base, g)
                images.append(fake)
                labels.append(FAKE)
                masks.append(mask)
        return images, labels, masks, gens

    def materialise(self, seed: int) -> DetectionDataset:
        """The base images plus one fixed pseudo-fake per real face (for validation).

        The pseudo-fakes' samples keep their real face's path (so a listing shows what each
        was made from), label fake and source the kind.
        """
        rng = np.random.default_rng([seed, 0x5B1])
        fakes, samples = [], []
        for j, i in enumerate(self.real_index):
            fake, _, kind = self.make(j, rng)
            fakes.append(fake)
            real = self.base.samples[int(i)]
            samples.append(DetectionSample(real.path, FAKE, kind, real.group))
        extra = torch.from_numpy(np.stack(fakes)).permute(0, 3, 1, 2).contiguous()
        return DetectionDataset(
            images=torch.cat([self.base.images, extra]),
            labels=torch.cat([self.base.labels, torch.full((len(fakes),), FAKE)]),
            samples=list(self.base.samples) + samples,
            skipped=list(self.base.skipped),
            native_floor=self.base.native_floor,
        )

    def preview(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` reals with a pseudo-fake each and its mask, for the run report:
        uint8 (n, S, S, 3) reals, uint8 (n, S, S, 3) fakes, float32 (n, S, S) masks."""
        rng = np.random.default_rng([seed, 0x9E1])
        pick = rng.choice(self.n_pseudo, size=min(n, self.n_pseudo), replace=False)
        reals, fakes, masks = [], [], []
        for j in sorted(int(p) for p in pick):
            fake, mask, _ = self.make(j, rng)
            i = int(self.real_index[j])
            reals.append(self.base.images[i].permute(1, 2, 0).numpy())
            fakes.append(fake)
            masks.append(mask)
        return np.stack(reals), np.stack(fakes), np.stack(masks)
