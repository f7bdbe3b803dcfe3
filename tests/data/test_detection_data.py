"""Detection data: collecting sources, leak-free splits, manifest parsing, one decode path."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_lab.augment.robustness import PERTURBATIONS, RobustAugment
from deepfake_lab.data.detection import (
    DetectionDataset,
    DetectionSample,
    collect_samples,
    read_manifest,
    split_samples,
)
from deepfake_lab.errors import UserError
from deepfake_lab.hashing import sha256_file


def write_images(folder: Path, n: int, seed: int, size: int = 20, start: int = 0) -> list[Path]:
    """``n`` distinct smooth PNGs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    paths = []
    for i in range(start, start + n):
        colour = rng.uniform(0, 255, 3)
        img = colour * xx[..., None] + rng.uniform(0, 255, 3) * yy[..., None]
        path = folder / f"{i:03d}.png"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def leaks(splits: dict[str, list[DetectionSample]]) -> set[str]:
    """sha256 digests found in more than one split."""
    seen: dict[str, str] = {}
    bad = set()
    for name, samples in splits.items():
        for s in samples:
            digest = sha256_file(s.path)
            if seen.setdefault(digest, name) != name:
                bad.add(digest)
    return bad


def test_collect_folders_names_sources(tmp_path: Path) -> None:
    write_images(tmp_path / "real", 4, seed=0)
    write_images(tmp_path / "progan" / "samples", 3, seed=1)
    write_images(tmp_path / "stylegan" / "samples", 2, seed=2)
    write_images(tmp_path / "real2" / "real", 2, seed=3)  # a fake folder named "real"
    samples = collect_samples(
        [tmp_path / "real"],
        [tmp_path / "progan/samples", tmp_path / "stylegan/samples", tmp_path / "real2/real"],
    )
    by_source: dict[str, list[int]] = {}
    for s in samples:
        by_source.setdefault(s.source, []).append(s.label)
    assert by_source == {
        "real": [0] * 4,
        "progan-samples": [1] * 3,
        "stylegan-samples": [1] * 2,
        "real-2": [1] * 2,
    }


def test_collect_errors(tmp_path: Path) -> None:
    write_images(tmp_path / "real", 2, seed=0)
    write_images(tmp_path / "fake", 2, seed=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="fake folder not found"):
        collect_samples([tmp_path / "real"], [tmp_path / "nope"])
    with pytest.raises(UserError, match="no images found"):
        collect_samples([tmp_path / "real"], [tmp_path / "empty"])
    with pytest.raises(UserError, match="no fake images"):
        collect_samples([tmp_path / "real"], [])
    with pytest.raises(UserError, match="no real images"):
        collect_samples([], [tmp_path / "fake"])
    with pytest.raises(UserError, match="given twice"):
        collect_samples([tmp_path / "real"], [tmp_path / "fake", tmp_path / "fake"])


def write_manifest(path: Path, lines: list[object]) -> Path:
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def test_manifest_parsing(tmp_path: Path) -> None:
    reals = write_images(tmp_path / "data" / "r", 2, seed=0)
    fakes = write_images(tmp_path / "data" / "f", 3, seed=1)
    manifest = write_manifest(
        tmp_path / "data" / "list.jsonl",
        [
            "# comment",
            {"path": "r/000.png", "label": "real"},
            {"path": "r/001.png", "label": 0, "group": 7},
            "",
            {"path": "f/000.png", "label": "FAKE", "source": "sd15"},
            {"path": "f/001.png", "label": 1, "source": "sd15", "group": "vid-1"},
            {"path": str(fakes[2]), "label": "1"},  # absolute paths are fine too
        ],
    )
    samples = read_manifest(manifest)
    assert [s.path for s in samples] == reals + fakes
    assert [s.label for s in samples] == [0, 0, 1, 1, 1]
    assert [s.source for s in samples] == ["real", "real", "sd15", "sd15", "fake"]
    assert [s.group for s in samples] == [None, "7", None, "vid-1", None]
    assert collect_samples([], [], manifest=manifest) == samples


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"list.jsonl:2: not valid JSON"),
        ('["r/000.png", 0]', "expected a JSON object"),
        ({"label": "real"}, 'needs a "path"'),
        ({"path": "r/000.png", "label": "maybe"}, '"label" must be'),
        ({"path": "r/000.png", "label": 2}, '"label" must be'),
        ({"path": "r/000.png"}, '"label" must be'),
        ({"path": "r/missing.png", "label": 0}, r"1 file\(s\) listed .* do not exist"),
    ],
)
def test_manifest_errors(tmp_path: Path, line: object, message: str) -> None:
    write_images(tmp_path / "r", 1, seed=0)
    manifest = write_manifest(tmp_path / "list.jsonl", [{"path": "r/000.png", "label": 0}, line])
    with pytest.raises(UserError, match=message):
        read_manifest(manifest)


def test_manifest_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="manifest not found"):
        read_manifest(tmp_path / "nope.jsonl")
    with pytest.raises(UserError, match="lists no images"):
        read_manifest(write_manifest(tmp_path / "empty.jsonl", ["# nothing"]))


def leaky_folders(tmp_path: Path) -> list[DetectionSample]:
    """Real and fake folders where some files are byte-identical copies of each other."""
    real = write_images(tmp_path / "real", 30, seed=0)
    fake = write_images(tmp_path / "fake", 20, seed=1)
    for i in range(4):  # the same picture labelled real and fake
        shutil.copy(real[i], tmp_path / "fake" / f"copy_of_real_{i}.png")
    for i in range(5):  # duplicates within a class, under other names
        shutil.copy(real[10 + i], tmp_path / "real" / f"dup_{i}.png")
        shutil.copy(fake[i], tmp_path / "fake" / f"dup_{i}.png")
    return collect_samples([tmp_path / "real"], [tmp_path / "fake"])


@pytest.mark.parametrize("seed", range(6))
def test_split_never_leaks_a_file(tmp_path: Path, seed: int) -> None:
    samples = leaky_folders(tmp_path)
    splits = split_samples(samples, val=0.3, test=0.2, seed=seed)
    assert leaks(splits) == set()
    assert sorted(map(str, (s.path for part in splits.values() for s in part))) == sorted(
        str(s.path) for s in samples
    )
    for name in ("train", "val", "test"):
        assert {s.label for s in splits[name]} == {0, 1}, name


def test_group_keeps_video_frames_together(tmp_path: Path) -> None:
    lines = []
    for video in range(8):
        label = video % 2
        for frame in write_images(tmp_path / f"v{video}", 5, seed=video):
            rel = frame.relative_to(tmp_path).as_posix()
            lines.append({"path": rel, "label": label, "group": f"video{video}"})
    samples = read_manifest(write_manifest(tmp_path / "m.jsonl", lines))
    for seed in range(5):
        splits = split_samples(samples, val=0.25, test=0.25, seed=seed)
        home = {}
        for name, part in splits.items():
            for s in part:
                assert home.setdefault(s.group, name) == name
        assert len(set(home.values())) == 3  # 4 videos per class: each split gets some


def test_group_and_content_keys_are_joined(tmp_path: Path) -> None:
    # a.png and b.png share a group; b.png is byte-identical to c.png (no group):
    # all three must land together.
    paths = write_images(tmp_path / "x", 2, seed=0)
    shutil.copy(paths[1], tmp_path / "x" / "c.png")
    others = write_images(tmp_path / "y", 12, seed=1)
    samples = [
        DetectionSample(paths[0], 0, "real", "g"),
        DetectionSample(paths[1], 1, "gen", "g"),
        DetectionSample(tmp_path / "x" / "c.png", 0, "real"),
    ] + [DetectionSample(p, i % 2, "real" if i % 2 == 0 else "gen") for i, p in enumerate(others)]
    for seed in range(8):
        splits = split_samples(samples, val=0.4, seed=seed)
        where = {name for name, part in splits.items() for s in part if s in samples[:3]}
        assert len(where) == 1


def test_stratification_keeps_both_classes_and_every_source_in_val(tmp_path: Path) -> None:
    write_images(tmp_path / "real", 40, seed=0)
    write_images(tmp_path / "big", 30, seed=1)
    write_images(tmp_path / "tiny", 2, seed=2)  # a small generator still reaches val
    samples = collect_samples([tmp_path / "real"], [tmp_path / "big", tmp_path / "tiny"])
    for seed in range(10):
        splits = split_samples(samples, val=0.15, seed=seed)
        val_sources = {s.source for s in splits["val"]}
        assert val_sources == {"real", "big", "tiny"}
        assert {s.source for s in splits["train"]} == {"real", "big", "tiny"}
        assert splits["test"] == []
        n_real_val = sum(s.label == 0 for s in splits["val"])
        assert n_real_val == 6  # 15% of 40


def test_split_is_deterministic_and_order_independent(tmp_path: Path) -> None:
    samples = leaky_folders(tmp_path)
    a = split_samples(samples, val=0.2, seed=3)
    shuffled = samples[:]
    random.Random(0).shuffle(shuffled)
    b = split_samples(shuffled, val=0.2, seed=3)
    assert {k: set(v) for k, v in a.items()} == {k: set(v) for k, v in b.items()}
    assert a == split_samples(samples, val=0.2, seed=3)
    assert set(a["val"]) != set(split_samples(samples, val=0.2, seed=4)["val"])


@pytest.mark.parametrize(("val", "test"), [(-0.1, 0), (1.0, 0), (0.6, 0.5)])
def test_split_rejects_bad_shares(tmp_path: Path, val: float, test: float) -> None:
    with pytest.raises(UserError, match="split shares"):
        split_samples([], val=val, test=test)


def test_same_file_as_real_and_fake_gives_identical_tensors(tmp_path: Path) -> None:
    path = write_images(tmp_path / "x", 1, seed=0, size=37)[0]  # odd size: crop + resize
    ds = DetectionDataset.from_samples(
        [DetectionSample(path, 0, "real"), DetectionSample(path, 1, "gen")], size=16
    )
    assert ds.images.shape == (2, 3, 16, 16) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images[0], ds.images[1])
    x, y = ds.batch(torch.tensor([0, 1]))
    assert x.dtype == torch.float32 and y.tolist() == [0.0, 1.0]
    assert torch.equal(x[0], x[1]) and x.min() >= -1 and x.max() <= 1


def test_dataset_skips_and_reports_undecodable(tmp_path: Path) -> None:
    good = write_images(tmp_path / "r", 2, seed=0) + write_images(tmp_path / "f", 2, seed=1)
    bad = tmp_path / "f" / "broken.png"
    bad.write_text("not an image")
    samples = [DetectionSample(p, int("/f/" in p.as_posix()), "x") for p in [*good, bad]]
    ds = DetectionDataset.from_samples(samples, size=8)
    assert len(ds) == 4 and ds.paths == good
    assert [p for p, _ in ds.skipped] == [bad] and "not_image" in ds.skipped[0][1]
    assert ds.labels.tolist() == [0, 0, 1, 1]
    only_bad = [DetectionSample(good[0], 0, "real"), DetectionSample(bad, 1, "x")]
    with pytest.raises(UserError, match="none of the fake images"):
        DetectionDataset.from_samples(only_bad, size=8)


def test_dataset_helpers_and_reencode(tmp_path: Path) -> None:
    write_images(tmp_path / "real", 3, seed=0)
    write_images(tmp_path / "gen", 2, seed=1)
    samples = collect_samples([tmp_path / "real"], [tmp_path / "gen"])
    ds = DetectionDataset.from_samples(samples, size=16)
    assert ds.source_names() == ["real", "gen"] and ds.counts() == {"real": 3, "gen": 2}
    sub = ds.subset([3, 4])
    assert sub.sources == ["gen", "gen"] and torch.equal(sub.images, ds.images[3:])
    jpeg = DetectionDataset.from_samples(samples, size=16, reencode="jpeg50")
    assert not torch.equal(jpeg.images, ds.images)
    mapped = ds.map(PERTURBATIONS["jpeg50"])
    assert torch.equal(mapped.images, jpeg.images)  # same op, same place in the pipeline
    assert torch.equal(DetectionDataset.from_samples(samples, 16, "png").images, ds.images)
    with pytest.raises(UserError, match="unknown re-encoding"):
        DetectionDataset.from_samples(samples, size=16, reencode="webp")


def test_batch_with_augmentation_is_deterministic(tmp_path: Path) -> None:
    write_images(tmp_path / "real", 4, seed=0)
    write_images(tmp_path / "gen", 4, seed=1)
    ds = DetectionDataset.from_samples(
        collect_samples([tmp_path / "real"], [tmp_path / "gen"]), size=16
    )
    aug, idx = RobustAugment(strength=3.0), torch.arange(8)
    x1, y1 = ds.batch(idx, augment=aug, rng=np.random.default_rng(0))
    x2, _ = ds.batch(idx, augment=aug, rng=np.random.default_rng(0))
    plain, y0 = ds.batch(idx)
    assert torch.equal(x1, x2) and not torch.equal(x1, plain) and torch.equal(y1, y0)
    with pytest.raises(ValueError, match="needs rng"):
        ds.batch(idx, augment=aug)
