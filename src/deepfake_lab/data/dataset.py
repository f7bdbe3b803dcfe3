"""In-memory face datasets for training: uint8 images in, [-1, 1] float batches out.

Face sets for GAN training on a CPU are small (hundreds to tens of thousands of images at
32-128 px), so images are decoded once and kept as one uint8 tensor: 10k images at 64 px take
120 MB. Files that cannot be decoded are skipped and counted, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deepfake_lab.data.decode import IMAGE_SUFFIXES, DecodeError, decode_image
from deepfake_lab.data.layouts import detect_layout
from deepfake_lab.data.layouts import list_images as layout_images
from deepfake_lab.data.manifest import MANIFEST
from deepfake_lab.errors import UserError
from deepfake_lab.faces.align import center_crop
from deepfake_lab.io import read_jsonl


def list_images(root: Path) -> list[Path]:
    """Image files for a dataset folder, in a stable order.

    A ``manifest.jsonl`` (written by ``data prepare``) is authoritative when present: its
    ``output`` entries, relative to ``root``. Otherwise the images of the folder's layout
    (CelebA, FFHQ or any tree), as ``data prepare`` would read them.
    """
    root = Path(root)
    manifest = root / MANIFEST
    if manifest.is_file():
        outputs = (rec.get("output") for rec in read_jsonl(manifest))
        return [root / out for out in outputs if out and (root / out).is_file()]
    images, _ignored = layout_images(detect_layout(root))
    return [img.path for img in images]


def load_rgb(path: Path, size: int) -> np.ndarray:
    """Decode one image to (size, size, 3) uint8 RGB: centre crop to square, then resize.

    Decoding goes through :func:`deepfake_lab.data.decode.decode_image` (EXIF orientation,
    mode conversion, pixel limit); cropping through :func:`deepfake_lab.faces.align.center_crop`.

    Raises:
        DecodeError: the file is not a usable image.
    """
    return center_crop(decode_image(Path(path)).pixels, size)[0]


@dataclass
class FaceDataset:
    """A stack of RGB images held in memory.

    Attributes:
        images: uint8 tensor (N, 3, size, size).
        paths: source file of each image.
        skipped: files that could not be decoded, with the reason.
    """

    images: torch.Tensor
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @classmethod
    def from_folder(cls, root: str | Path, size: int, max_images: int | None = None) -> FaceDataset:
        """Load every image below ``root`` at ``size`` px.

        Raises:
            UserError: the folder is missing or holds no readable image.
        """
        root = Path(root)
        if not root.is_dir():
            raise UserError(f"dataset folder not found: {root}")
        paths = list_images(root)
        if max_images is not None:
            paths = paths[:max_images]
        if not paths:
            raise UserError(
                f"no images found in {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}); "
                "point --data at a folder of face images, e.g. one made by `data prepare`"
            )
        arrays, kept, skipped = [], [], []
        for p in paths:
            try:
                arrays.append(load_rgb(p, size))
                kept.append(p)
            except DecodeError as e:
                skipped.append((p, str(e)))
        if not arrays:
            raise UserError(f"none of the {len(paths)} files in {root} could be decoded")
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        return cls(images=images, paths=kept, skipped=skipped)

    @classmethod
    def from_array(cls, array: np.ndarray) -> FaceDataset:
        """Wrap (N, H, W, 3) uint8 images (e.g. the procedural faces)."""
        images = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).contiguous()
        return cls(images=images, paths=[])

    def batch(self, indices: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """Images at ``indices`` as float (B, 3, size, size) in [-1, 1] on ``device``."""
        x = self.images[indices].to(device, non_blocking=True)
        return x.to(torch.float32).div_(127.5).sub_(1.0)
