"""The reference-statistics cache: hits, invalidation by file content, damaged entries."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from deepfake_lab.metrics import stats_cache as sc
from deepfake_lab.metrics.stats_cache import FeatureSet, StatsCache, default_cache_dir

EXTRACTOR = {"name": "tiny", "weights_sha256": "abc"}
SETTINGS = {"size": 16}


def _files(folder: Path, n: int = 4) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"{i}.png"
        p.write_bytes(f"image {i}".encode())
        paths.append(p)
    return paths


class Computer:
    """Counts calls; gives a FeatureSet derived from the call number."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, with_features: bool = True) -> FeatureSet:
        self.calls += 1
        feats = np.random.default_rng(self.calls).normal(size=(5, 3)).astype(np.float32)
        f64 = feats.astype(np.float64)
        return FeatureSet(
            mu=f64.mean(0),
            sigma=np.cov(f64, rowvar=False),
            count=5,
            features=feats if with_features else None,
        )


def _get(cache: StatsCache, root: Path, compute: Computer, need_features: bool = True, **kw):
    paths = sorted(root.iterdir())
    return cache.get_or_compute(
        root,
        paths,
        kw.get("extractor", EXTRACTOR),
        kw.get("settings", SETTINGS),
        lambda: compute(kw.get("store_features", True)),
        need_features,
    )


def test_second_call_is_a_hit_with_the_same_numbers(tmp_path):
    root, cache, compute = tmp_path / "ref", StatsCache(tmp_path / "cache"), Computer()
    _files(root)
    first, path, hit = _get(cache, root, compute)
    assert not hit and path.is_file() and path.parent == tmp_path / "cache"
    second, path2, hit2 = _get(cache, root, compute)
    assert hit2 and path2 == path and compute.calls == 1
    np.testing.assert_array_equal(second.mu, first.mu)
    np.testing.assert_array_equal(second.sigma, first.sigma)
    np.testing.assert_array_equal(second.features, first.features)
    assert second.features.dtype == np.float32 and second.count == 5
    # Plain arrays only: loadable without pickle.
    with np.load(path, allow_pickle=False) as data:
        assert "features" in data.files


def test_renaming_the_folder_keeps_the_key(tmp_path):
    cache, compute = StatsCache(tmp_path / "cache"), Computer()
    _files(tmp_path / "a")
    _get(cache, tmp_path / "a", compute)
    os.rename(tmp_path / "a", tmp_path / "b")
    assert _get(cache, tmp_path / "b", compute)[2]


@pytest.mark.parametrize("change", ["content", "added", "removed", "renamed"])
def test_a_changed_dataset_misses(tmp_path, change):
    root, cache, compute = tmp_path / "ref", StatsCache(tmp_path / "cache"), Computer()
    paths = _files(root)
    _, first_path, _ = _get(cache, root, compute)
    if change == "content":
        paths[1].write_bytes(b"other pixels")
    elif change == "added":
        (root / "new.png").write_bytes(b"new")
    elif change == "removed":
        paths[2].unlink()
    else:
        paths[0].rename(root / "zz.png")
    _, second_path, hit = _get(cache, root, compute)
    assert not hit and compute.calls == 2 and second_path != first_path


def test_content_change_with_same_size_is_detected(tmp_path):
    root, cache, compute = tmp_path / "ref", StatsCache(tmp_path / "cache"), Computer()
    paths = _files(root)
    _get(cache, root, compute)
    st = paths[0].stat()
    paths[0].write_bytes(b"image X")  # same length as "image 0"
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert not _get(cache, root, compute)[2]


@pytest.mark.parametrize(
    "other", [{"extractor": {"name": "tiny", "weights_sha256": "def"}}, {"settings": {"size": 32}}]
)
def test_extractor_and_settings_are_part_of_the_key(tmp_path, other):
    root, cache, compute = tmp_path / "ref", StatsCache(tmp_path / "cache"), Computer()
    _files(root)
    _get(cache, root, compute)
    assert not _get(cache, root, compute, **other)[2]
    assert _get(cache, root, compute)[2]  # the first entry is still there


def test_unchanged_files_are_not_hashed_again(tmp_path, monkeypatch):
    root, cache = tmp_path / "ref", StatsCache(tmp_path / "cache")
    paths = _files(root)
    hashed: list[Path] = []
    real_hash = sc.sha256_file
    monkeypatch.setattr(sc, "sha256_file", lambda p: hashed.append(p) or real_hash(p))
    key = cache.key(root, paths, EXTRACTOR, SETTINGS)
    assert len(hashed) == 4
    assert cache.key(root, paths, EXTRACTOR, SETTINGS) == key and len(hashed) == 4
    paths[3].write_bytes(b"changed!")
    assert cache.key(root, paths, EXTRACTOR, SETTINGS) != key and hashed[-1] == paths[3]
    assert len(hashed) == 5
    # A damaged hash index only costs rehashing.
    next((tmp_path / "cache" / "file-hashes").iterdir()).write_text("{not json")
    assert cache.key(root, paths, EXTRACTOR, SETTINGS) != key and len(hashed) == 9


@pytest.mark.parametrize("damage", [b"", b"garbage, not a zip", "truncate", "wrong-key"])
def test_a_damaged_entry_is_recomputed_and_rewritten(tmp_path, damage):
    root, cache, compute = tmp_path / "ref", StatsCache(tmp_path / "cache"), Computer()
    _files(root)
    _, path, _ = _get(cache, root, compute)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "wrong-key":
        good = dict(np.load(path, allow_pickle=False))
        np.savez(path, **{**good, "key": np.array("0" * 64)})
    else:
        path.write_bytes(damage)
    fs, path2, hit = _get(cache, root, compute)
    assert not hit and compute.calls == 2 and path2 == path
    assert _get(cache, root, compute)[2]  # rewritten and readable again


def test_an_entry_without_features_is_not_a_hit_when_they_are_needed(tmp_path):
    root, cache, compute = tmp_path / "ref", StatsCache(tmp_path / "cache"), Computer()
    _files(root)
    _get(cache, root, compute, need_features=False, store_features=False)
    assert _get(cache, root, compute, need_features=False)[2]
    fs, _, hit = _get(cache, root, compute, need_features=True)
    assert not hit and fs.features is not None
    assert _get(cache, root, compute, need_features=True)[2]


def test_default_location_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPFAKE_LAB_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" / "stats"
    assert StatsCache().dir == tmp_path / "c" / "stats"
    monkeypatch.delenv("DEEPFAKE_LAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "deepfake-lab" / "stats"


def test_relative_and_absolute_paths_mix(tmp_path, monkeypatch):
    from deepfake_lab.metrics.stats_cache import StatsCache

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.png").write_bytes(b"a")
    monkeypatch.chdir(tmp_path)
    rel = StatsCache(tmp_path / "c").file_hashes("data", [(data / "a.png").resolve()])
    assert rel == StatsCache(tmp_path / "c").file_hashes(data, [data / "a.png"])
    assert rel[0][0] == "a.png"


def test_a_folder_of_symlinks_keeps_its_own_names(tmp_path):
    from deepfake_lab.metrics.stats_cache import StatsCache

    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "x.png").write_bytes(b"x")
    links = tmp_path / "links"
    links.mkdir()
    (links / "y.png").symlink_to(tmp_path / "real" / "x.png")
    assert StatsCache(tmp_path / "c").file_hashes(links, [links / "y.png"])[0][0] == "y.png"
