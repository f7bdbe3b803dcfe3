"""Manifest paths are confined to the manifest's folder unless the user allows otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_lab.data.detection import collect_samples
from deepfake_lab.data.detection_manifest import read_manifest
from deepfake_lab.errors import UserError


def _image(path: Path, value: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 12, 3), value, np.uint8)).save(path)
    return path


def _manifest(path: Path, *paths: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [{"path": p, "label": i % 2} for i, p in enumerate(paths)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``data/`` with two images and a manifest beside them; ``secret.png`` one level up."""
    _image(tmp_path / "data" / "a.png", 10)
    _image(tmp_path / "data" / "sub" / "b.png", 20)
    _image(tmp_path / "secret.png", 30)
    return tmp_path


def test_paths_under_the_folder_are_read(tree: Path) -> None:
    inside = str(tree / "data" / "sub" / "b.png")  # absolute, but under the folder
    samples = read_manifest(_manifest(tree / "data" / "m.jsonl", "a.png", inside, "sub/../a.png"))
    assert [s.path.name for s in samples] == ["a.png", "b.png", "a.png"]


@pytest.mark.parametrize(
    "bad",
    ["../secret.png", "/etc/passwd", "sub/../../secret.png", "../does-not-exist.png", "link.png"],
)
def test_paths_outside_the_folder_are_refused_with_how_to_allow_them(tree: Path, bad: str) -> None:
    (tree / "data" / "link.png").symlink_to(tree / "secret.png")  # a link out of the folder
    manifest = _manifest(tree / "data" / "m.jsonl", "a.png", bad)
    with pytest.raises(UserError) as info:
        read_manifest(manifest)
    message = str(info.value)
    assert "1 path(s) in" in message and "lead outside its folder" in message
    assert repr(str(tree / "data" / bad)) in message and "(line 2)" in message
    assert "--manifest-outside" in message and "data.manifest_outside=true" in message
    assert "\n" not in message and "do not exist" not in message  # existence never told


def test_allow_outside_reads_them(tree: Path) -> None:
    (tree / "data" / "link.png").symlink_to(tree / "secret.png")
    manifest = _manifest(tree / "data" / "m.jsonl", "../secret.png", "link.png", "a.png")
    samples = read_manifest(manifest, allow_outside=True)
    assert [s.path.resolve() for s in samples] == [tree / "secret.png"] * 2 + [
        tree / "data" / "a.png"
    ]
    assert collect_samples([], [], manifest, manifest_outside=True) == samples
    with pytest.raises(UserError, match="lead outside"):
        collect_samples([], [], manifest)


def test_a_manifest_reached_through_a_link_is_confined_to_its_real_folder(tree: Path) -> None:
    # The folder is resolved too, so a linked folder confines as the real one does.
    (tree / "linked").symlink_to(tree / "data", target_is_directory=True)
    manifest = _manifest(tree / "data" / "m.jsonl", "a.png", "sub/b.png")
    assert len(read_manifest(tree / "linked" / "m.jsonl")) == 2
    _manifest(manifest, "../secret.png")
    with pytest.raises(UserError, match="lead outside"):
        read_manifest(tree / "linked" / "m.jsonl")


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"path": "a\\u0000b.png", "label": 0}', "NUL"),
        ('{"path": "\\ud800.png", "label": 0}', "not a usable file name"),
        ("[" * 100_000, "nested too deeply"),
        (json.dumps({"path": "x" * 5000 + ".png", "label": 0}), "do not exist"),
    ],
)
def test_hostile_lines_are_one_line_user_errors(tree: Path, line: str, message: str) -> None:
    manifest = tree / "data" / "m.jsonl"
    manifest.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=message) as info:
        read_manifest(manifest)
    assert "\n" not in str(info.value)


def test_the_training_config_key_allows_outside_paths(tree: Path) -> None:
    from deepfake_lab.config import build_config
    from deepfake_lab.training.detector_config import DetectorConfig
    from deepfake_lab.training.detector_launch import load_detector_data

    for i in range(4):
        _image(tree / "outside" / f"r{i}.png", 40 + 10 * i)
        _image(tree / "data" / f"f{i}.png", 140 + 10 * i)
    lines = [f"../outside/r{i}.png" for i in range(4)]
    manifest = tree / "data" / "m.jsonl"
    records = [{"path": p, "label": "real"} for p in lines]
    records += [{"path": f"f{i}.png", "label": "fake"} for i in range(4)]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    base = [f"data.manifest={manifest}", "model.size=8", "data.native_size=ignore"]
    with pytest.raises(UserError, match="4 path\\(s\\) in .* lead outside"):
        load_detector_data(build_config(DetectorConfig, None, base))
    cfg = build_config(DetectorConfig, None, [*base, "data.manifest_outside=true"])
    train, val, _ = load_detector_data(cfg)
    assert len(train) + len(val) == 8


def test_eval_detector_refuses_outside_paths_unless_the_flag_is_given(
    tree: Path, monkeypatch
) -> None:
    from typer.testing import CliRunner

    from deepfake_lab.cli.app import app
    from deepfake_lab.evaluation import detector_eval

    manifest = _manifest(tree / "data" / "m.jsonl", "a.png", "../secret.png")
    monkeypatch.setattr(detector_eval, "load_detector", lambda source, dev: object())
    res = CliRunner().invoke(app, ["eval", "detector", "run", "--manifest", str(manifest)])
    assert res.exit_code == 2 and "--manifest-outside" in res.output

    seen: dict = {}

    def fake_evaluate(*args, **kwargs):
        seen.update(kwargs)
        return {}

    monkeypatch.setattr(detector_eval, "evaluate_detector", fake_evaluate)
    args = ["eval", "detector", "run", "--manifest", str(manifest), "--manifest-outside"]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert seen["manifest_outside"] is True


def test_train_fusion_refuses_outside_paths_unless_the_flag_is_given(
    tree: Path, monkeypatch
) -> None:
    from typer.testing import CliRunner

    from deepfake_lab.cli.app import app
    from deepfake_lab.training import fusion

    manifest = _manifest(tree / "data" / "m.jsonl", "a.png", "../secret.png")
    base = ["train", "fusion", "--member", "a", "--member", "b", "--manifest", str(manifest)]
    # The members are loaded first; stand-ins let the run reach the manifest.
    monkeypatch.setattr(fusion, "_member_spec", lambda m, dev: ({"size": 16, "kwargs": {}}, {}))
    res = CliRunner().invoke(app, base)
    assert res.exit_code == 2 and "--manifest-outside" in res.output
    seen: dict = {}

    def stop_after_collecting(*args, **kwargs):
        seen.update(kwargs)
        raise fusion.UserError("collected")

    monkeypatch.setattr(fusion, "collect_samples", stop_after_collecting)
    res = CliRunner().invoke(app, [*base, "--manifest-outside"])
    assert "collected" in res.output and seen["manifest_outside"] is True
