"""Labelled samples for detectors and the JSONL manifest that lists them.

A manifest is one ``{"path", "label", "source"?, "group"?}`` object a line, ``path``
relative to the manifest's folder (or absolute). A manifest comes from anyone (a dataset
download, a colleague), so its paths are confined to the manifest's folder: after ``..``
and symbolic links are resolved, every listed file must lie under that folder, else the
manifest is refused before any listed file is looked at (a manifest naming ``/etc/passwd``
or ``../../.ssh/id_rsa`` must not make training read it, or an error say whether it exists).
``allow_outside=True`` (``--manifest-outside``, ``data.manifest_outside=true``) lifts the
rule for a manifest the user trusts, such as the absolute-path manifests ``eval
cross-source`` and ``eval resistance`` write for their own runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from deepfake_lab.errors import UserError

REAL, FAKE = 0, 1

_LABEL_NAMES = {"real": REAL, "fake": FAKE, "0": REAL, "1": FAKE}

# How to allow paths outside the manifest's folder, for the refusal's message.
ALLOW_OUTSIDE_HINT = (
    "move the files under it, or, if you trust this manifest, allow it with "
    "--manifest-outside (training: --set data.manifest_outside=true)"
)


@dataclass(frozen=True)
class DetectionSample:
    """One labelled image file.

    Attributes:
        path: the image file.
        label: 0 real, 1 fake.
        source: where it came from: ``"real"``, the fake folder's name, or a manifest's
            ``source``.
        group: an explicit split key (e.g. a video id): samples with the same group stay in
            one split. None: the file's content alone decides.
    """

    path: Path
    label: int
    source: str
    group: str | None = None


def read_manifest(path: Path, allow_outside: bool = False) -> list[DetectionSample]:
    """Read a JSONL manifest: one ``{"path", "label", "source"?, "group"?}`` object a line.

    ``path`` is relative to the manifest's folder (or absolute); ``label`` is ``"real"`` /
    ``"fake"`` or 0 / 1. Blank lines and lines starting with ``#`` are skipped.

    Args:
        path: the manifest.
        allow_outside: accept files outside the manifest's folder (see the module
            docstring); by default such a manifest is refused.

    Raises:
        UserError: the file is missing or unreadable, a line is not a JSON object with a valid
            ``path`` and ``label``, a listed path leads outside the manifest's folder (unless
            ``allow_outside``), or listed files do not exist (with the line of the first one).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"manifest not found: {path}")
    root = _resolved(path.parent, str(path))
    where = str(path)
    samples: list[DetectionSample] = []
    missing: list[tuple[int, Path]] = []
    outside: list[tuple[int, str]] = []
    # Parsed here rather than with io.read_jsonl, which skips bad lines silently: a typo in a
    # hand-written manifest must be reported, not quietly drop images. surrogateescape: a
    # manifest that is not UTF-8 (a Latin-1 file name written as it is) still names the very
    # bytes of that file, as os.fsdecode would.
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            for lineno, line in enumerate(fh, start=1):
                where = f"{path}:{lineno}"
                sample = _parse_line(line, where, path.parent)
                if sample is None:
                    continue
                if not allow_outside and not _resolved(sample.path, where).is_relative_to(root):
                    outside.append((lineno, str(sample.path)))
                    continue  # never looked at: not even whether it exists
                if not _is_file(sample.path):
                    missing.append((lineno, sample.path))
                samples.append(sample)
    except OSError as exc:  # unreadable (permissions), I/O error
        raise UserError(f"{where}: cannot read the manifest: {exc.strerror or exc}") from None
    if outside:
        lineno, first = outside[0]
        raise UserError(
            f"{len(outside)} path(s) in {path} lead outside its folder {root}, e.g. {first!r} "
            f"(line {lineno}); {ALLOW_OUTSIDE_HINT}"
        )
    if missing:
        lineno, first = missing[0]
        raise UserError(
            f"{len(missing)} file(s) listed in {path} do not exist, e.g. {first} (line {lineno}); "
            "paths are relative to the manifest's folder"
        )
    if not samples:
        raise UserError(f"manifest {path} lists no images")
    return samples


def _parse_line(line: str, where: str, folder: Path) -> DetectionSample | None:
    """The sample of one manifest line; None for a blank line or a comment."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: not valid JSON ({exc.msg})") from None
    except RecursionError:  # "[[[[..." nested past the parser's depth
        raise UserError(f"{where}: not valid JSON (nested too deeply)") from None
    if not isinstance(rec, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    rel = rec.get("path")
    if not isinstance(rel, str) or not rel:
        raise UserError(f'{where}: needs a "path" string (relative to the manifest)')
    if "\0" in rel:
        raise UserError(f'{where}: the "path" holds a NUL character, which no file name can')
    label = _parse_label(rec.get("label"), where)
    source = rec.get("source")
    if source is None:
        source = "real" if label == REAL else "fake"
    return DetectionSample(folder / rel, label, str(source), _group(rec.get("group")))


def _resolved(path: Path, where: str) -> Path:
    """``path`` made absolute, ``..`` and symbolic links resolved (as far as they exist)."""
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError) as exc:  # a name the OS cannot encode (a lone surrogate)
        raise UserError(f"{where}: not a usable file name ({exc})") from None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, or one the OS cannot encode
        return False


def _parse_label(value: object, where: str) -> int:
    if isinstance(value, bool | int) and int(value) in (REAL, FAKE):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in _LABEL_NAMES:
        return _LABEL_NAMES[value.strip().lower()]
    raise UserError(f'{where}: "label" must be "real"/"fake" or 0/1, got {value!r}')


def _group(value: object) -> str | None:
    return None if value is None or value == "" else str(value)
