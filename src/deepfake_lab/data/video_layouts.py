"""Video dataset layouts (FaceForensics++, VoxCeleb) and the labels a source's path carries.

Two layouts are recognised by :func:`detect_video_layout` (``layouts.detect_layout`` asks it
after CelebA and FFHQ):

* ``faceforensics``: a FaceForensics++ root holding
  ``original_sequences/<source>/<compression>/videos/*.mp4`` (source ``youtube`` or
  ``actors``) and ``manipulated_sequences/<method>/<compression>/videos/*.mp4`` (method
  ``Deepfakes``, ``Face2Face``, ``FaceSwap``, ``NeuralTextures``, ``FaceShifter``,
  ``DeepFakeDetection``, ...), compression ``c0``, ``c23``, ``c40`` or ``raw``. Frames
  extracted by the FaceForensics++ scripts (``.../<compression>/images/<video>/0000.png``)
  are read too. Originals are ``label="real"`` with ``method=None`` (no manipulation was
  applied: ``method`` names the manipulation only), manipulated ones ``label="fake"`` with
  the method folder's name. Anything else in the tree is passed over, in particular the
  ``manipulated_sequences/<method>/masks/`` videos, which are masks, not faces. The source
  may also be a folder inside such a tree (``manipulated_sequences/Deepfakes``): the labels
  come from the path below the FaceForensics++ root.
* ``voxceleb``: VoxCeleb1/2 videos, ``id<digits>/<YouTube id>/<utterance>.mp4``, in the
  source folder itself or under ``mp4/``, ``dev/``, ``test/``, ``dev/mp4/`` or ``test/mp4/``
  (or a single speaker's ``id<digits>/`` folder). ``label="real"``, ``speaker`` is the
  ``id`` folder, ``youtube_id`` the folder of the YouTube video the utterance was cut from;
  a ``dev`` folder above the speaker gives ``split="train"``, a ``test`` folder
  ``split="test"``. Files not at that depth are passed over.

Labels stay None for the image layouts and for plain folders.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Top folders of a FaceForensics++ root.
FFPP_ORIGINAL = "original_sequences"
FFPP_MANIPULATED = "manipulated_sequences"
_FFPP_SEQUENCES = (FFPP_ORIGINAL, FFPP_MANIPULATED)
_FFPP_COMPRESSION = re.compile(r"^(c\d+|raw)$")
_FFPP_MEDIA_DIRS = ("videos", "images")

_VOX_SPEAKER = re.compile(r"^id\d+$")
# Where VoxCeleb archives put the speaker folders, relative to the folder given.
_VOX_PARENTS = (".", "mp4", "dev/mp4", "test/mp4", "dev", "test")
_VOX_SPLITS = {"dev": "train", "test": "test"}
# Only this many speaker and video folders are looked into to recognise VoxCeleb, so that
# recognising a 6000-speaker tree costs a few directory listings, not a walk of it.
_VOX_PROBE = 3


@dataclass(frozen=True)
class SourceLabels:
    """What a source's place in a dataset says about it (None where it says nothing).

    Attributes:
        label: ``"real"`` or ``"fake"``.
        method: the manipulation method of a fake (FaceForensics++ ``Deepfakes``, ...);
            None for real sources.
        compression: FaceForensics++ quality level, ``"c0"``, ``"c23"``, ``"c40"``, ``"raw"``.
        speaker: VoxCeleb speaker id (``"id10001"``).
        youtube_id: VoxCeleb YouTube video the utterance was cut from (``"1zcIwhmdeo4"``).
    """

    label: str | None = None
    method: str | None = None
    compression: str | None = None
    speaker: str | None = None
    youtube_id: str | None = None

    def fields(self) -> dict[str, str | None]:
        """The labels as manifest fields (``manifest.MANIFEST_FIELDS`` holds them all)."""
        return asdict(self)


#: Placement in a layout: ``(split, labels)``, or None for a file the layout does not hold.
Labeler = Callable[[Path], tuple[str | None, SourceLabels] | None]


@dataclass(frozen=True)
class SourceVideo:
    """One candidate video file.

    Attributes:
        path: absolute path.
        rel: path relative to the source root, with forward slashes.
        split: ``"train"``, ``"val"``, ``"test"`` when the layout says, else None.
        labels: what the layout says about it.
    """

    path: Path
    rel: str
    split: str | None = None
    labels: SourceLabels = field(default_factory=SourceLabels)


@dataclass(frozen=True)
class VideoLayout:
    """A recognised video dataset.

    Attributes:
        name: ``"faceforensics"`` or ``"voxceleb"``.
        note: one line for the user (what was found).
        labeler: split and labels of a file from its absolute path, None to pass it over.
    """

    name: str
    note: str
    labeler: Labeler


def detect_video_layout(src: Path) -> VideoLayout | None:
    """Recognise a FaceForensics++ or VoxCeleb tree at (or, for FaceForensics++, above)
    the resolved folder ``src``; None when it is neither."""
    ffpp = find_ffpp_root(src)
    if ffpp is not None:
        where = "root" if ffpp == src else f"inside {ffpp}"
        return VideoLayout("faceforensics", f"FaceForensics++ {where}", _ffpp_labeler(ffpp))
    speakers = find_voxceleb_speakers(src)
    if speakers is not None:
        rel = "." if speakers == src else speakers.relative_to(src).as_posix()
        note = f"id*/<YouTube id>/ speaker folders (first found in {rel}/)"
        return VideoLayout("voxceleb", note, voxceleb_labels)
    return None


def find_ffpp_root(src: Path) -> Path | None:
    """The FaceForensics++ root: ``src`` when it holds ``original_sequences/`` or
    ``manipulated_sequences/``, the folder above one of those when ``src`` lies inside it,
    else None."""
    if any((src / name).is_dir() for name in _FFPP_SEQUENCES):
        return src
    for i, part in enumerate(src.parts):
        if part in _FFPP_SEQUENCES and i > 0:
            return Path(*src.parts[:i])
    return None


def ffpp_labels(rel_parts: tuple[str, ...]) -> SourceLabels | None:
    """Labels of a file from its path parts below the FaceForensics++ root.

    ``(sequences, source_or_method, compression, "videos"|"images", ..., file)``; None for
    anything else (masks, bounding boxes, downloads, stray files).
    """
    if len(rel_parts) < 5 or rel_parts[0] not in _FFPP_SEQUENCES:
        return None
    _, who, compression, media = rel_parts[:4]
    if not _FFPP_COMPRESSION.match(compression) or media not in _FFPP_MEDIA_DIRS:
        return None
    if rel_parts[0] == FFPP_ORIGINAL:
        return SourceLabels(label="real", method=None, compression=compression)
    return SourceLabels(label="fake", method=who, compression=compression)


def find_voxceleb_speakers(src: Path) -> Path | None:
    """The folder of VoxCeleb ``id<digits>/`` speaker folders at or below ``src`` (``src``
    itself when it is one speaker's folder), or None when ``src`` is no VoxCeleb tree."""
    if _VOX_SPEAKER.match(src.name) and _holds_video_folders(src):
        return src
    for parent in _VOX_PARENTS:
        folder = src / parent if parent != "." else src
        speakers = [d for d in _subdirs(folder) if _VOX_SPEAKER.match(d.name)]
        if any(_holds_video_folders(d) for d in speakers[:_VOX_PROBE]):
            return folder
    return None


def voxceleb_labels(path: Path) -> tuple[str | None, SourceLabels] | None:
    """Split and labels of a VoxCeleb file ``.../id<digits>/<YouTube id>/<utterance>``.

    The split comes from a ``dev`` or ``test`` folder right above the speaker folder (or
    above its ``mp4/``): only those two places, so that a ``test`` folder anywhere else in
    the absolute path (``/home/test/...``) means nothing.
    """
    parts = path.parts
    if len(parts) < 4 or not _VOX_SPEAKER.match(parts[-3]):
        return None
    above = [p for p in parts[-5:-3] if p != "mp4"][-1:]
    split = _VOX_SPLITS.get(above[0]) if above else None
    return split, SourceLabels(label="real", speaker=parts[-3], youtube_id=parts[-2])


def _ffpp_labeler(root: Path) -> Labeler:
    def labeler(path: Path) -> tuple[str | None, SourceLabels] | None:
        try:
            rel = path.relative_to(root).parts
        except ValueError:
            return None
        labels = ffpp_labels(rel)
        # FaceForensics++ splits come as pair lists in a separate download; not read here.
        return None if labels is None else (None, labels)

    return labeler


def _subdirs(folder: Path) -> list[Path]:
    """Visible sub-folders of ``folder``, sorted; empty when it cannot be listed."""
    try:
        entries = [e for e in os.scandir(folder) if not e.name.startswith(".")]
    except OSError:
        return []
    return sorted(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))


def _holds_video_folders(speaker: Path) -> bool:
    """Whether one of the first sub-folders of ``speaker`` holds a video file."""
    from deepfake_lab.video.decode import VIDEO_SUFFIXES  # PyAV only once a tree is probed

    for video_dir in _subdirs(speaker)[:_VOX_PROBE]:
        try:
            names = os.listdir(video_dir)
        except OSError:
            continue
        if any(os.path.splitext(n)[1].lower() in VIDEO_SUFFIXES for n in names):
            return True
    return False
