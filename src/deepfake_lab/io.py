"""Atomic file writes: a temp file in the same folder, fsync, then rename over the target.

A crash mid-write leaves the previous file intact and never a half-written one under the
final name.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from deepfake_lab.safe_text import file_stem

# mkstemp/mkdtemp make 0600 files and 0700 folders; what gets renamed into place should get
# what open()/mkdir() would give it (0666/0777 less the umask), so that a team can share run
# folders. The umask can only be read by setting it: done once, at import, before any thread
# writes files.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def usual_permissions(path: str | Path) -> None:
    """Give a temp file or folder (mkstemp/mkdtemp: owner only) the permissions that
    ``open()`` or ``mkdir()`` would have given it under the process umask."""
    mode = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, mode & ~_UMASK)


def check_output_paths(
    files: dict[str, str | Path | None] | None = None,
    folders: dict[str, str | Path | None] | None = None,
) -> None:
    """Refuse output paths that cannot be written, before any long work starts.

    Args:
        files: option name -> a file to be written (None: not asked for); a folder there,
            or a file where its parent folder should be, is an error.
        folders: option name -> a folder to write into; a file there is an error.

    Raises:
        UserError: one line naming the option and the path.
    """
    from deepfake_lab.errors import UserError

    for option, path in (files or {}).items():
        if path is None:
            continue
        path = Path(path)
        if path.is_dir():
            raise UserError(f"{option} {path} is a folder; give a file name inside it")
        blocker = next((p for p in path.parents if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise UserError(f"{option} {path}: {blocker} is a file, not a folder")
    for option, path in (folders or {}).items():
        if path is None:
            continue
        path = Path(path)
        blocker = next((p for p in (path, *path.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise UserError(f"{option} {path}: {blocker} is a file, not a folder")


def fsync_folder(folder: str | Path) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where folders cannot be
    opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the rename still happened
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[IO[bytes]], None], sync_folder: bool = False) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path`` and rename it into place.

    Args:
        path: the final name.
        write: writes the content to the file object it is given.
        sync_folder: also fsync the folder after the rename, so that the new name survives a
            power cut (checkpoints; one more disk flush per file, so not for bulk writes).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temp name holds a short form of the final one: a name near the file system's limit
    # must not make the temp name too long.
    stem = file_stem(path.name, reserve=14)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:  # closes fd whatever happens next
            usual_permissions(tmp)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.replace(tmp, path)
        except OSError as exc:  # say what the user asked for, not our temp file's name
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        if sync_folder:
            fsync_folder(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk (a crash loses at most this line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSONL file, skipping a torn last line left by a crash."""
    out: list[dict[str, Any]] = []
    if not Path(path).exists():
        return out
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def encode_png(image: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """PNG bytes of a uint8 (H, W, 3) RGB image, with optional tEXt chunks.

    The one PNG encoder of the package, so metadata (e.g. provenance tags) is added in one
    place.
    """
    from PIL import Image, PngImagePlugin

    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def write_png(path: Path, image: np.ndarray, text: dict[str, str] | None = None) -> Path:
    """Write a uint8 (H, W, 3) RGB image to ``path`` as PNG, atomically."""
    atomic_write_bytes(Path(path), encode_png(image, text))
    return Path(path)
