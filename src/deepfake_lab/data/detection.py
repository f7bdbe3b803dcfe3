"""Real/fake image sets for detectors: collect, split without leaks, decode once.

Samples come from real and fake folders (each fake folder is one *source*, e.g. one generator)
or from a JSONL manifest (:mod:`deepfake_lab.data.detection_manifest`, which confines its
paths to its folder). :func:`split_samples` splits by file identity: every sample is keyed
by the sha256 of its bytes and, when given, by its ``group`` (e.g. a video id); samples that
share any key are kept in one split, so the same picture can never sit in train and in val,
even as two copies in two folders. :class:`DetectionDataset` decodes real and fake images
through the same function (:func:`deepfake_lab.data.dataset.load_rgb`), so the two classes
cannot differ by how they were loaded.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deepfake_lab.augment.resample import prepare_input
from deepfake_lab.augment.robustness import (
    ImageRngs,
    augment_images,
    map_images,
    parse_reencode,
)
from deepfake_lab.data.dataset import list_images, load_rgb
from deepfake_lab.data.decode import IMAGE_SUFFIXES, DecodeError
from deepfake_lab.data.detection_manifest import FAKE, REAL, DetectionSample, read_manifest
from deepfake_lab.errors import UserError
from deepfake_lab.hashing import sha256_file

SPLITS = ("train", "val", "test")


def collect_samples(
    real: Sequence[Path],
    fake: Sequence[Path],
    manifest: Path | None = None,
    require_fake: bool = True,
    manifest_outside: bool = False,
) -> list[DetectionSample]:
    """Samples from real folders, fake folders and/or a manifest (all given are combined).

    Each fake folder is its own source, named after the folder; when two share a name they
    are told apart by their parent folder (``progan-samples``), then by a number.

    Args:
        require_fake: False when fakes are made from the reals (pseudo-fakes), so a set of
            real faces alone is complete.
        manifest_outside: accept manifest paths outside the manifest's folder
            (:func:`~deepfake_lab.data.detection_manifest.read_manifest`'s ``allow_outside``).

    Raises:
        UserError: a folder or the manifest is missing, a folder holds no image, the
            manifest is malformed or lists files outside its folder, or there is no real
            (or, with ``require_fake``, no fake) image at all.
    """
    samples: list[DetectionSample] = []
    for folder in real:
        samples += [DetectionSample(p, REAL, "real") for p in _folder_images(folder, "real")]
    for folder, name in zip(fake, fake_source_names(fake), strict=True):
        samples += [DetectionSample(p, FAKE, name) for p in _folder_images(folder, "fake")]
    if manifest is not None:
        samples += read_manifest(manifest, allow_outside=manifest_outside)
    for label, name, flag in ((REAL, "real", "--real"), (FAKE, "fake", "--fake")):
        if label == FAKE and not require_fake:
            continue
        if not any(s.label == label for s in samples):
            raise UserError(
                f"no {name} images: give {flag} DIR or a manifest with rows labelled {name!r}"
            )
    return samples


def split_samples(
    samples: Sequence[DetectionSample], val: float = 0.15, test: float = 0.0, seed: int = 0
) -> dict[str, list[DetectionSample]]:
    """Split into ``train`` / ``val`` / ``test`` with no file in two splits.

    Samples are joined into units when they share a file sha256 (copies, also across classes
    and folders) or a ``group``. Units are stratified by their (label, source) mix, so each
    class and each fake source is present in val (and test) when it has at least two units
    (three for test); within a stratum they are shuffled with a generator seeded by ``seed``
    and the stratum's name (adding a source does not reshuffle the others) and cut at the
    requested shares of samples. The result does not depend on the order of ``samples``;
    within a split, samples keep their input order.

    Args:
        samples: from :func:`collect_samples`.
        val: share of samples for validation, in [0, 1).
        test: share for test, in [0, 1); ``val + test < 1``.
        seed: split seed.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` (``test`` empty when ``test=0``).

    Raises:
        UserError: shares out of range.
    """
    if not (0.0 <= val < 1.0 and 0.0 <= test < 1.0 and val + test < 1.0):
        raise UserError(f"split shares val={val}, test={test} must be >= 0 and sum to below 1")
    units = _units(samples)
    strata: dict[tuple[tuple[int, str], ...], list[list[int]]] = defaultdict(list)
    for unit in units:
        strata[tuple(sorted({(samples[i].label, samples[i].source) for i in unit}))].append(unit)

    which = [""] * len(samples)
    for key, members in strata.items():
        rng = np.random.default_rng([seed % 2**64, zlib.crc32(repr(key).encode())])
        order = [members[i] for i in rng.permutation(len(members))]
        for unit, split in zip(order, _cut([len(u) for u in order], val, test), strict=True):
            for i in unit:
                which[i] = split
    out: dict[str, list[DetectionSample]] = {name: [] for name in SPLITS}
    for sample, split in zip(samples, which, strict=True):
        out[split].append(sample)
    return out


@dataclass
class DetectionDataset:
    """Labelled images held in memory.

    Attributes:
        images: uint8 (N, 3, size, size) RGB.
        labels: int64 (N,), 0 real / 1 fake.
        samples: the sample behind each image (path, label, source, group).
        skipped: files that could not be decoded, with the reason.
        native_floor: the side every image was floored to after decoding, or None.
    """

    images: torch.Tensor
    labels: torch.Tensor
    samples: list[DetectionSample]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    native_floor: int | None = None

    @classmethod
    def from_samples(
        cls,
        samples: Sequence[DetectionSample],
        size: int,
        reencode: str | None = None,
        native_floor: int | None = None,
        perturb: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> DetectionDataset:
        """Decode every sample once to ``size`` px through :func:`load_rgb`.

        Args:
            samples: the images; real and fake go through the very same decode and resize.
            size: output side in px.
            reencode: ``"jpegNN"`` re-compresses every image (both classes) as JPEG at
                quality NN after resizing, so that the classes share compression traces;
                ``None`` / ``"none"`` / ``"png"`` (lossless) leave pixels as decoded.
            native_floor: bring every image down to this side and back up after decoding
                (:func:`deepfake_lab.augment.resample.to_native_floor`), so that all share
                the resolution history of the smallest; None: as decoded.
            perturb: a uint8 (size, size, 3) edit applied right after decoding, before the
                floor and the re-encoding, as a re-shared file would reach a detector (the
                robustness sweep of a detector that floors or re-encodes its inputs).

        Raises:
            UserError: nothing could be decoded, or one class lost all its images.
        """
        parse_reencode(reencode)  # a bad value fails before anything is decoded
        arrays, kept, skipped = [], [], []
        for s in samples:
            try:
                img = load_rgb(s.path, size)
            except DecodeError as exc:
                skipped.append((s.path, str(exc)))
                continue
            if perturb is not None:
                img = perturb(img)
            arrays.append(prepare_input(img, native_floor, reencode))
            kept.append(s)
        if not arrays:
            raise UserError(f"none of the {len(samples)} images could be decoded")
        labels = torch.tensor([s.label for s in kept], dtype=torch.int64)
        for label, name in ((REAL, "real"), (FAKE, "fake")):
            wanted = any(s.label == label for s in samples)
            if wanted and not bool((labels == label).any()):
                raise UserError(f"none of the {name} images could be decoded")
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        return cls(
            images=images,
            labels=labels,
            samples=kept,
            skipped=skipped,
            native_floor=native_floor,
        )

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def paths(self) -> list[Path]:
        return [s.path for s in self.samples]

    @property
    def sources(self) -> list[str]:
        """Source name of each image."""
        return [s.source for s in self.samples]

    def source_names(self) -> list[str]:
        """Distinct sources, ``"real"`` first when present, then sorted."""
        return sorted(set(self.sources), key=lambda name: (name != "real", name))

    def counts(self) -> dict[str, int]:
        """Images per source."""
        return dict(Counter(self.sources))

    def subset(self, indices: Sequence[int] | torch.Tensor) -> DetectionDataset:
        """The images at ``indices`` (e.g. one source), sharing no storage with ``self``."""
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return DetectionDataset(
            images=self.images[idx].clone(),
            labels=self.labels[idx].clone(),
            samples=[self.samples[int(i)] for i in idx],
            skipped=list(self.skipped),
            native_floor=self.native_floor,
        )

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> DetectionDataset:
        """A copy with ``fn`` applied to every image as uint8 (H, W, 3) numpy.

        For the robustness sweep: ``ds.map(PERTURBATIONS["jpeg75"])``. ``fn`` must keep the
        shape; it is applied at the dataset's size, i.e. to what the detector sees.
        """
        images = map_images(fn, self.images)
        return DetectionDataset(
            images, self.labels.clone(), list(self.samples), list(self.skipped), self.native_floor
        )

    def batch(
        self,
        indices: torch.Tensor,
        device: torch.device | str = "cpu",
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        rng: ImageRngs | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels at ``indices``.

        Args:
            indices: int64 (B,).
            device: where the batch goes.
            augment: optional per-image ``(uint8 (H, W, 3), rng) -> uint8 (H, W, 3)``, e.g. a
                :class:`deepfake_lab.augment.robustness.RobustAugment`; applied on the CPU.
            rng: the generator ``augment`` draws from (required with ``augment``), or one
                per index.

        Returns:
            ``(x, y)``: float32 (B, 3, size, size) in [-1, 1] and float32 (B,) in {0, 1}.
        """
        x = self.images[indices]
        if augment is not None:
            x = augment_images(augment, x, rng)
        x = x.to(device, non_blocking=True).to(torch.float32).div_(127.5).sub_(1.0)
        y = self.labels[indices].to(device, non_blocking=True).to(torch.float32)
        return x, y


def _folder_images(folder: Path, kind: str) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{kind} folder not found: {folder}")
    paths = list_images(folder)
    if not paths:
        raise UserError(
            f"no images found in {kind} folder {folder} "
            f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return paths


def fake_source_names(folders: Sequence[Path]) -> list[str]:
    """One unique source name per fake folder (never ``"real"``)."""
    resolved = [Path(f).resolve() for f in folders]
    for i, f in enumerate(resolved):
        if f in resolved[:i]:
            raise UserError(f"fake folder {folders[i]} is given twice")
    names = [f.name or "fake" for f in resolved]
    clashes = Counter(names)
    # Same folder name in two places ("progan/samples", "stylegan/samples"): the parent tells
    # them apart better than a number would.
    names = [
        f"{f.parent.name}-{n}" if clashes[n] > 1 and f.parent.name else n
        for f, n in zip(resolved, names, strict=True)
    ]
    used, out = {"real"}, []
    for name in names:
        unique, k = name, 2
        while unique in used:
            unique, k = f"{name}-{k}", k + 1
        used.add(unique)
        out.append(unique)
    return out


def _units(samples: Sequence[DetectionSample]) -> list[list[int]]:
    """Sample indices joined by shared sha256 or group (union-find), in a canonical order."""
    parent = list(range(len(samples)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    digests: dict[Path, str] = {}
    keys: list[list[str]] = []
    for i, s in enumerate(samples):
        if s.path not in digests:
            try:
                digests[s.path] = "sha256:" + sha256_file(s.path)
            except OSError:  # unreadable: decoding will skip and report it
                digests[s.path] = f"path:{s.path}"
        own = [digests[s.path]] + ([f"group:{s.group}"] if s.group is not None else [])
        keys.append(own)
        for key in own:
            if key in first:
                parent[find(i)] = find(first[key])
            else:
                first[key] = i
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(len(samples)):
        members[find(i)].append(i)
    # Sorted by content keys, not input order, so a listing order change keeps the split.
    return sorted(members.values(), key=lambda unit: min(k for i in unit for k in keys[i]))


def _cut(sizes: list[int], val: float, test: float) -> list[str]:
    """Split names for shuffled units of ``sizes`` samples: test, then val, then train."""
    n = sum(sizes)
    splits, pos = [], 0.0
    for size in sizes:
        mid = pos + size / 2  # a unit goes where its middle falls: rounds to the nearest cut
        splits.append("test" if mid < test * n else "val" if mid < (test + val) * n else "train")
        pos += size
    # Small strata: keep one unit in train, then one in val and test when asked for and the
    # stratum has units to spare, so every class and source is seen by each split.
    if "train" not in splits and len(splits) >= 2:
        splits[-1] = "train"
    for name, share in (("val", val), ("test", test)):
        if share > 0 and name not in splits and splits.count("train") >= 2:
            splits[splits.index("train")] = name
    return splits
