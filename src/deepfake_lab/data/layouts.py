"""Recognise how a source folder is organised and list its images in a fixed order.

Three layouts are known:

* ``celeba``: a folder holding ``img_align_celeba/`` (the official archive, or the Kaggle copy
  with the folder nested twice) and ``list_eval_partition.txt`` (``000001.jpg 0`` lines; 0/1/2
  = train/val/test), also looked for under ``Eval/`` and as Kaggle's
  ``list_eval_partition.csv``. The split of each image goes into the manifest.
* ``ffhq``: ``images1024x1024/`` (or ``thumbnails128x128/``) or the folder itself, made of
  numbered ``00000/`` subfolders of ``NNNNN.png``. Only the image folder is read, so an
  ``in-the-wild-images/`` beside it is not mixed in.
* ``folder``: any other tree, read recursively as plain images.

Hidden files and folders (``.name``) are skipped, symbolic links to folders are not followed
(no loops), and files are listed sorted by their path relative to the source, so two runs
over the same tree see the same order.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from deepfake_lab.data.decode import IMAGE_SUFFIXES
from deepfake_lab.errors import UserError

CELEBA_SPLITS = {"0": "train", "1": "val", "2": "test"}

_FFHQ_IMAGE_DIRS = ("images1024x1024", "thumbnails128x128")
_NUMBERED_DIR = re.compile(r"^\d{5}$")
_NUMBERED_PNG = re.compile(r"^\d{5}\.png$", re.IGNORECASE)


@dataclass(frozen=True)
class SourceImage:
    """One candidate image file.

    Attributes:
        path: absolute path.
        rel: path relative to the source root, with forward slashes.
        split: ``"train"``, ``"val"``, ``"test"`` when the layout says, else None.
    """

    path: Path
    rel: str
    split: str | None = None


@dataclass
class Layout:
    """A recognised source folder.

    Attributes:
        name: ``"celeba"``, ``"ffhq"`` or ``"folder"``.
        root: the source folder as given (resolved).
        image_root: the folder whose tree holds the images.
        splits: file name -> split, for layouts that have one.
        note: one line for the user (what was found, what is missing).
    """

    name: str
    root: Path
    image_root: Path
    splits: dict[str, str] = field(default_factory=dict)
    note: str = ""

    def describe(self) -> str:
        """A one-line description, e.g. ``celeba (img_align_celeba/, splits from ...)``."""
        return f"{self.name}: {self.note}" if self.note else self.name


def detect_layout(src: Path) -> Layout:
    """Recognise the layout of ``src``.

    Raises:
        UserError: ``src`` is missing or not a folder, or a split file is malformed.
    """
    src = Path(src).expanduser()
    if not src.exists():
        raise UserError(f"source folder {src} does not exist")
    if not src.is_dir():
        raise UserError(f"source {src} is not a folder; give the folder that holds the images")
    src = src.resolve()

    celeba = _find_celeba_images(src)
    if celeba is not None:
        split_file = _find_celeba_partition(src)
        if split_file is None:
            note = f"{_rel(celeba, src)}/, no list_eval_partition.txt found, so no splits"
            return Layout("celeba", src, celeba, {}, note)
        splits = read_celeba_partition(split_file)
        note = f"{_rel(celeba, src)}/, splits from {_rel(split_file, src)}"
        return Layout("celeba", src, celeba, splits, note)

    for name in _FFHQ_IMAGE_DIRS:
        if (src / name).is_dir():
            return Layout("ffhq", src, src / name, {}, f"{name}/")
    if src.name in _FFHQ_IMAGE_DIRS or _is_numbered_tree(src):
        return Layout("ffhq", src, src, {}, "numbered NNNNN/ folders")
    return Layout("folder", src, src, {}, "plain image tree")


def list_images(layout: Layout, exclude: Path | None = None) -> tuple[list[SourceImage], int]:
    """All image files of ``layout``, sorted by relative path.

    Args:
        layout: from :func:`detect_layout`.
        exclude: a folder to leave out (the output folder when it lies inside the source).

    Returns:
        ``(images, ignored)``: the images, and how many other files were passed over.
    """
    exclude = exclude.resolve() if exclude is not None else None
    images: list[SourceImage] = []
    ignored = 0
    for path in _walk(layout.image_root, exclude):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            ignored += 1
            continue
        rel = path.relative_to(layout.root).as_posix()
        images.append(SourceImage(path, rel, layout.splits.get(path.name)))
    images.sort(key=lambda image: image.rel)
    return images, ignored


def read_celeba_partition(path: Path) -> dict[str, str]:
    """Read CelebA's ``list_eval_partition.txt`` (or Kaggle's ``.csv``) into name -> split.

    Raises:
        UserError: the file cannot be read, or a line is not ``<file name> <0|1|2>``.
    """
    try:
        return _read_partition(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(
            f"cannot read the CelebA partition file {path} ({detail}); fix or remove it"
        ) from None


def _read_partition(path: Path) -> dict[str, str]:
    splits: dict[str, str] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        if path.suffix.lower() == ".csv":
            rows: Iterator[list[str]] = csv.reader(fh)
        else:
            rows = (line.split() for line in fh)
        for lineno, row in enumerate(rows, start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2 or row[1].strip() not in CELEBA_SPLITS:
                if lineno == 1 and path.suffix.lower() == ".csv":
                    continue  # Kaggle's header line: image_id,partition
                raise UserError(
                    f"{path}:{lineno}: expected '<image> <0|1|2>', got {' '.join(row)!r}"
                )
            splits[row[0].strip()] = CELEBA_SPLITS[row[1].strip()]
    return splits


def _find_celeba_images(src: Path) -> Path | None:
    candidates = [src / "img_align_celeba", src / "img_align_celeba" / "img_align_celeba"]
    if src.name == "img_align_celeba":
        candidates.insert(0, src)
    found = None
    for candidate in candidates:
        if candidate.is_dir():
            found = candidate
    return found


def _find_celeba_partition(src: Path) -> Path | None:
    roots = [src, src / "Eval"]
    if src.name == "img_align_celeba":
        roots += [src.parent, src.parent / "Eval"]
    for root in roots:
        for name in ("list_eval_partition.txt", "list_eval_partition.csv"):
            if (root / name).is_file():
                return root / name
    return None


def _is_numbered_tree(src: Path) -> bool:
    """True when ``src`` holds ``NNNNN/`` folders (and little else) of ``NNNNN.png`` files."""
    try:
        entries = [e for e in os.scandir(src) if not e.name.startswith(".")]
    except OSError:
        return False
    dirs = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    if not dirs or not all(_NUMBERED_DIR.match(d) for d in dirs):
        return False
    try:
        names = os.listdir(src / dirs[0])
    except OSError:
        return False
    return any(_NUMBERED_PNG.match(name) for name in names)


def _walk(root: Path, exclude: Path | None) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        # Pruning in place stops os.walk descending into hidden folders and the output folder.
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and (exclude is None or (here / d).resolve() != exclude)
        )
        for name in sorted(filenames):
            if not name.startswith("."):
                yield here / name


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)
