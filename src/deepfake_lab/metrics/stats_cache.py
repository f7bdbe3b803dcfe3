"""On-disk cache of reference-set feature statistics, keyed by what the numbers depend on.

A reference set (the real images a generator is compared with) is usually evaluated many
times with the same extractor, so its statistics are computed once and stored as
``<cache>/<extractor>-<key>.npz`` (default cache ``$DEEPFAKE_LAB_CACHE/stats``, else
``$XDG_CACHE_HOME/deepfake-lab/stats`` or ``~/.cache/deepfake-lab/stats``).

The key is a sha256 over

- the sorted relative paths of the images and the sha256 of each file's bytes (so a changed,
  added or removed file gives a new key; renaming the folder does not);
- the extractor's ``cache_key()`` (name, weights fingerprint, input resizing);
- the image size and preprocessing settings, and the number of images.

Hashing every file on each call would cost seconds per GB, so per-file hashes are remembered
in ``<cache>/file-hashes/<root-hash>.json`` by (relative path, size, mtime_ns) and a file is
rehashed only when its size or mtime changes.

Entries are written atomically (temp file + rename) as plain ``.npz`` and read with
``allow_pickle=False``. An unreadable, truncated or mismatched entry is ignored and rewritten,
never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_lab.cache import cache_dir as shared_cache_dir
from deepfake_lab.hashing import sha256_file
from deepfake_lab.io import atomic_write, atomic_write_json

__all__ = ["FeatureSet", "StatsCache", "default_cache_dir"]

#: Bump when the stored layout or the meaning of a key changes.
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """Folder for cached reference statistics (see :func:`deepfake_lab.cache.cache_dir`)."""
    return shared_cache_dir("stats")


@dataclass
class FeatureSet:
    """What one feature pass over a set of images gives.

    Attributes:
        mu: float64 (d,) mean.
        sigma: float64 (d, d) unbiased covariance.
        count: number of images.
        features: float32 (N, d) feature matrix when kept (KID, precision/recall, density/
            coverage need it), else None.
        logits: float32 (N, C) class logits when kept (IS), else None.
        skipped: files that could not be decoded (not counted in ``count``).
    """

    mu: np.ndarray
    sigma: np.ndarray
    count: int
    features: np.ndarray | None = None
    logits: np.ndarray | None = None
    skipped: int = 0


def _canonical(obj: Any) -> str:
    # sort_keys + default=str: the same settings always give the same text.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, whether either was given relative, absolute or with its
    folder resolved (layouts resolve the root; files may be symlinks, which are not
    followed, so a folder of links keeps its own names)."""
    p = Path(os.path.abspath(path))
    for base in (Path(os.path.abspath(root)), root.resolve()):
        try:
            return p.relative_to(base).as_posix()
        except ValueError:
            continue
    raise ValueError(f"{path} is not inside {root}")


class StatsCache:
    """Reference statistics on disk (see the module docstring for the key).

    Args:
        cache_dir: folder of the entries; ``None`` means :func:`default_cache_dir`.
    """

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        self.dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()

    # -- dataset fingerprint -------------------------------------------------------------------

    def _hash_index_path(self, root: Path) -> Path:
        digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:24]
        return self.dir / "file-hashes" / f"{digest}.json"

    def file_hashes(self, root: str | Path, paths: Sequence[Path]) -> list[tuple[str, str]]:
        """(relative path, sha256) of each file, sorted by path; rehashes only changed files.

        Args:
            root: the dataset folder the relative paths are taken from.
            paths: the image files, inside ``root``.
        """
        root = Path(root)
        index_path = self._hash_index_path(root)
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            known = index["files"] if isinstance(index, dict) else {}
            if not isinstance(known, dict):
                known = {}
        except (OSError, ValueError, KeyError):  # missing or damaged: start afresh
            known = {}
        fresh: dict[str, list[Any]] = {}
        for path in paths:
            rel = _relative(Path(path), root)
            st = os.stat(path)
            entry = known.get(rel)
            if (
                isinstance(entry, list)
                and len(entry) == 3
                and entry[:2] == [st.st_size, st.st_mtime_ns]
                and isinstance(entry[2], str)
            ):
                fresh[rel] = entry
            else:
                fresh[rel] = [st.st_size, st.st_mtime_ns, sha256_file(Path(path))]
        if fresh != known:
            try:
                atomic_write_json(index_path, {"root": str(root.resolve()), "files": fresh})
            except OSError:
                pass  # a read-only cache only costs rehashing next time
        return sorted((rel, entry[2]) for rel, entry in fresh.items())

    def key(
        self,
        root: str | Path,
        paths: Sequence[Path],
        extractor_key: dict[str, Any],
        settings: dict[str, Any],
    ) -> str:
        """Hex sha256 identifying ``paths`` under ``extractor_key`` and ``settings``."""
        files = self.file_hashes(root, paths)
        blob = _canonical(
            {
                "format": CACHE_FORMAT,
                "files": files,
                "num_images": len(files),
                "extractor": extractor_key,
                "settings": settings,
            }
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    # -- entries -------------------------------------------------------------------------------

    def path_for(self, key: str, name: str) -> Path:
        """The entry file for ``key``; ``name`` (the extractor's) only makes it readable."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return self.dir / f"{safe}-{key[:32]}.npz"

    def load(self, key: str, name: str, need_features: bool) -> FeatureSet | None:
        """The stored entry, or None when absent, damaged, for another key, or lacking features
        that are needed."""
        path = self.path_for(key, name)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["key"]) != key or int(data["format"]) != CACHE_FORMAT:
                    return None
                mu = np.asarray(data["mu"], dtype=np.float64)
                sigma = np.asarray(data["sigma"], dtype=np.float64)
                count, skipped = int(data["count"]), int(data["skipped"])
                features = np.asarray(data["features"]) if "features" in data.files else None
        except Exception:
            # Any damage (truncated zip, bad header, missing array) means "no entry": it is
            # recomputed and rewritten, never an error.
            return None
        d = mu.shape[0] if mu.ndim == 1 else -1
        if d < 1 or sigma.shape != (d, d) or count < 2:
            return None
        if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
            return None
        if features is not None and features.shape != (count, d):
            return None
        if need_features and features is None:
            return None
        return FeatureSet(mu=mu, sigma=sigma, count=count, features=features, skipped=skipped)

    def save(self, key: str, name: str, fs: FeatureSet, meta: dict[str, Any]) -> Path:
        """Write ``fs`` (its features too when present; never logits) atomically."""
        arrays: dict[str, np.ndarray] = {
            "format": np.array(CACHE_FORMAT),
            "key": np.array(key),
            "mu": np.asarray(fs.mu, np.float64),
            "sigma": np.asarray(fs.sigma, np.float64),
            "count": np.array(fs.count),
            "skipped": np.array(fs.skipped),
            # Human-readable provenance, never parsed back.
            "meta": np.array(_canonical(meta)),
        }
        if fs.features is not None:
            arrays["features"] = np.asarray(fs.features, np.float32)
        path = self.path_for(key, name)
        atomic_write(path, lambda fh: np.savez(fh, **arrays))
        return path

    def get_or_compute(
        self,
        root: str | Path,
        paths: Sequence[Path],
        extractor_key: dict[str, Any],
        settings: dict[str, Any],
        compute: Callable[[], FeatureSet],
        need_features: bool,
    ) -> tuple[FeatureSet, Path, bool]:
        """The cached statistics of ``paths``, or ``compute()``'s, which are then stored.

        Args:
            root: dataset folder; paths in the key are relative to it.
            paths: its image files.
            extractor_key: ``FeatureExtractor.cache_key()``.
            settings: image size and preprocessing, anything else that changes the numbers.
            compute: makes the FeatureSet on a miss (with features when ``need_features``).
            need_features: a stored entry without the feature matrix does not count as a hit.

        Returns:
            (feature set, entry path, whether it came from the cache).
        """
        name = str(extractor_key.get("name", "features"))
        key = self.key(root, paths, extractor_key, settings)
        hit = self.load(key, name, need_features)
        if hit is not None:
            return hit, self.path_for(key, name), True
        fs = compute()
        meta = {
            "root": str(Path(root).resolve()),
            "extractor": extractor_key,
            "settings": settings,
        }
        try:
            path = self.save(key, name, fs, meta)
        except OSError:
            # A full or read-only cache must not cost the user their result.
            path = self.path_for(key, name)
        return fs, path, False
