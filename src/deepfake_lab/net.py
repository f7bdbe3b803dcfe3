"""The network, in one place: the offline switch and every download of the package.

deepfake-lab only ever downloads model files (YuNet, the MesoNet weights, the FID Inception
weights), each pinned by sha256, into the cache folder (:func:`deepfake_lab.cache.cache_dir`).
:func:`model_file` is the one way to get such a file:

- a cached copy is re-hashed each time it is used, and refused when its bytes changed (a
  damaged disk, or someone replacing the file), so a cached download is as trustworthy as a
  fresh one;
- a missing file is downloaded by :func:`download_checked` (streamed into a temp file, hashed,
  renamed into place only when it matches), unless the process is offline;
- offline (``--offline`` or ``DEEPFAKE_LAB_OFFLINE=1``) nothing is fetched: a missing file
  is one line naming it, its URL and sha256, and where to put it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from deepfake_lab.cache import cache_dir
from deepfake_lab.errors import UserError
from deepfake_lab.hashing import sha256_file
from deepfake_lab.io import atomic_write

#: The environment variable that turns every download off (``1``, ``true``, ``yes``, ``on``).
OFFLINE_ENV = "DEEPFAKE_LAB_OFFLINE"
_TRUE = frozenset({"1", "true", "yes", "on"})


def offline() -> bool:
    """Whether downloads are off: ``DEEPFAKE_LAB_OFFLINE`` is set to 1/true/yes/on (the
    CLI's ``--offline`` sets it)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in _TRUE


def set_offline(on: bool = True) -> None:
    """Turn downloads off (or back on) for this process and the processes it starts."""
    if on:
        os.environ[OFFLINE_ENV] = "1"
    else:
        os.environ.pop(OFFLINE_ENV, None)


@dataclass(frozen=True)
class ModelFile:
    """A downloadable model file, pinned by its sha256.

    Attributes:
        what: how messages name it (``"YuNet face model"``).
        filename: its name in the cache folder.
        url: where it is downloaded from.
        sha256: the pinned digest.
        max_bytes: a download larger than this is not the file (stopped there).
    """

    what: str
    filename: str
    url: str
    sha256: str
    max_bytes: int

    @property
    def cached(self) -> Path:
        """Where the file lives in the cache."""
        return cache_dir("models") / self.filename


def model_file(
    spec: ModelFile,
    *,
    download: bool = True,
    verify: bool = True,
    alternatives: str = "",
    timeout: float = 30.0,
) -> Path:
    """The cached copy of ``spec``, re-hashed, else a checked download into the cache.

    Args:
        spec: the file.
        download: allow a download (besides the offline switch).
        verify: re-hash a cached copy (False only for callers that hash it themselves).
        alternatives: what else the user can do, appended to the error (``", or pass
            --face-model PATH"``).
        timeout: seconds a stalled download waits.

    Raises:
        UserError: the cached copy's sha256 differs, or the file is missing and cannot be
            downloaded (offline, downloads off, or the download failed); one line naming the
            file, its URL and sha256, and where to put it.
    """
    dest = spec.cached
    if dest.is_file():
        if verify:
            check_cached(dest, spec)
        return dest
    if offline():
        reason = f"offline: --offline or {OFFLINE_ENV}=1"
    elif not download:
        reason = "downloads are off"
    else:
        try:
            download_checked(spec.url, dest, spec.sha256, spec.max_bytes, timeout)
            return dest
        except (OSError, ValueError, http.client.HTTPException) as exc:
            reason = "download failed: " + (" ".join(str(exc).split()) or type(exc).__name__)
    raise UserError(
        f"{spec.what} not found ({reason}); download {spec.url} (sha256 {spec.sha256}) "
        f"and place it at {dest}{alternatives}"
    )


def check_cached(path: Path, spec: ModelFile) -> None:
    """Refuse a cached file whose bytes no longer hash to ``spec.sha256``.

    Raises:
        UserError: one line naming the file, both digests and the fix.
    """
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise UserError(
            f"the cached {spec.what} {path} has changed (sha256 {digest[:12]}..., expected "
            f"{spec.sha256[:12]}...); delete it to download it again, or replace it with "
            f"{spec.url}"
        )


def download_checked(
    url: str, dest: Path, sha256: str, max_bytes: int, timeout: float = 60.0
) -> None:
    """Fetch ``url`` to ``dest`` atomically, checking its sha256 before it gets that name.

    The only function of the package that opens a network connection. The bytes stream into
    a temp file beside ``dest`` (:func:`deepfake_lab.io.atomic_write`), removed when anything
    fails, so ``dest`` is either the checked file or absent.

    Raises:
        UserError: offline (:func:`offline`); nothing is opened.
        ValueError: wrong sha256, or a download larger than ``max_bytes``.
        OSError, http.client.HTTPException: the download failed.
    """
    import urllib.request

    if offline():
        raise UserError(f"not downloading {url}: offline (--offline or {OFFLINE_ENV}=1)")

    def fetch(fh: IO[bytes]) -> None:
        digest, size = hashlib.sha256(), 0
        with urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    raise ValueError(f"the download is over {max_bytes >> 20} MB")
                digest.update(chunk)
                fh.write(chunk)
        if digest.hexdigest() != sha256:
            raise ValueError(f"sha256 of the download is {digest.hexdigest()}, expected {sha256}")

    atomic_write(dest, fetch)
