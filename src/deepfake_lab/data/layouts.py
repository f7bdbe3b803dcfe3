"""Recognise how a source folder is organised and list its images and videos in a fixed order.

Five layouts are known; the two video datasets are described in
:mod:`deepfake_lab.data.video_layouts`:

* ``celeba``: a folder holding ``img_align_celeba/`` (the official archive, or the Kaggle copy
  with the folder nested twice) and ``list_eval_partition.txt`` (``000001.jpg 0`` lines; 0/1/2
  = train/val/test), also looked for under ``Eval/`` and as Kaggle's
  ``list_eval_partition.csv``. The split of each image goes into the manifest.
* ``ffhq``: ``images1024x1024/`` (or ``thumbnails128x128/``) or the folder itself, made of
  numbered ``00000/`` subfolders of ``NNNNN.png``. Only the image folder is read, so an
  ``in-the-wild-images/`` beside it is not mixed in.
* ``faceforensics``: a FaceForensics++ tree (labels real/fake, method, compression).
* ``voxceleb``: VoxCeleb1/2 ``id*/<YouTube id>/*.mp4`` (label real, speaker, YouTube id).
* ``folder``: any other tree, read recursively as plain images and videos.

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
from deepfake_lab.data.video_layouts import (
    Labeler,
    SourceLabels,
    SourceVideo,
    detect_video_layout,
)
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
        labels: what the layout says about it (FaceForensics++ frames: real/fake, ...).
    """

    path: Path
    rel: str
    split: str | None = None
    labels: SourceLabels = field(default_factory=SourceLabels)


@dataclass
class Layout:
    """A recognised source folder.

    Attributes:
        name: ``"celeba"``, ``"ffhq"``, ``"faceforensics"``, ``"voxceleb"`` or ``"folder"``.
        root: the source folder as given (resolved).
        image_root: the folder whose tree holds the images (and videos).
        splits: file name -> split, for layouts that have one.
        note: one line for the user (what was found, what is missing).
        labeler: for the video dataset layouts, a file's split and labels from its path, or
            None for a file that is not part of the dataset (passed over).
    """

    name: str
    root: Path
    image_root: Path
    splits: dict[str, str] = field(default_factory=dict)
    note: str = ""
    labeler: Labeler | None = None

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
    video = detect_video_layout(src)
    if video is not None:
        return Layout(video.name, src, src, {}, video.note, video.labeler)
    return Layout("folder", src, src, {}, "plain image tree")


def list_images(layout: Layout, exclude: Path | None = None) -> tuple[list[SourceImage], int]:
    """All image files of ``layout``, sorted by relative path.

    Args:
        layout: from :func:`detect_layout`.
        exclude: a folder to leave out (the output folder when it lies inside the source).

    Returns:
        ``(images, ignored)``: the images, and how many other files (videos included) were
        passed over.
    """
    images, videos, ignored = list_sources(layout, exclude)
    return images, ignored + len(videos)


def list_sources(
    layout: Layout, exclude: Path | None = None
) -> tuple[list[SourceImage], list[SourceVideo], int]:
    """All image and video files of ``layout``, each list sorted by relative path.

    Video suffixes are ``deepfake_lab.video.decode.VIDEO_SUFFIXES``. A layout with a
    ``labeler`` passes over the files it does not place (FaceForensics++ masks, ...).

    Args:
        layout: from :func:`detect_layout`.
        exclude: a folder to leave out (the output folder when it lies inside the source).

    Returns:
        ``(images, videos, ignored)``: how many other files were passed over last.
    """
    from deepfake_lab.video.decode import VIDEO_SUFFIXES  # PyAV only when listing a source

    exclude = exclude.resolve() if exclude is not None else None
    images: list[SourceImage] = []
    videos: list[SourceVideo] = []
    ignored = 0
    for path in _walk(layout.image_root, exclude):
        suffix = path.suffix.lower()
        if suffix not in IMAGE_SUFFIXES and suffix not in VIDEO_SUFFIXES:
            ignored += 1
            continue
        split, labels = layout.splits.get(path.name), SourceLabels()
        if layout.labeler is not None:
            placed = layout.labeler(path)
            if placed is None:
                ignored += 1
                continue
            split, labels = placed
        rel = path.relative_to(layout.root).as_posix()
        if suffix in IMAGE_SUFFIXES:
            images.append(SourceImage(path, rel, split, labels))
        else:
            videos.append(SourceVideo(path, rel, split, labels))
    images.sort(key=lambda image: image.rel)
    videos.sort(key=lambda video: video.rel)
    return images, videos, ignored


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
