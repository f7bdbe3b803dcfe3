"""``deepfake-lab data prepare`` through typer's CliRunner."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from deepfake_lab.cli.app import app

runner = CliRunner()


def _images(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((40, 30, 3), 50 * i, np.uint8)).save(folder / f"{i}.png")
    return folder


def test_empty_folder_exits_2_with_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    result = runner.invoke(app, ["data", "prepare", str(tmp_path / "src"), str(tmp_path / "out")])
    assert result.exit_code == 2
    error = result.stderr.strip()
    assert error.startswith("error: no JPEG, PNG, WebP or BMP images")
    assert len(error.splitlines()) == 1
    assert "Traceback" not in result.output


def test_no_align_run_prints_layout_and_table(tmp_path: Path) -> None:
    src = _images(tmp_path / "src")
    out = tmp_path / "out"
    args = ["data", "prepare", str(src), str(out), "--size", "24", "--no-align"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "layout: folder" in result.output
    assert "kept (new)" in result.output and "none (--no-align)" in result.output
    assert json.loads((out / "summary.json").read_text())["kept"] == 3
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 3

    again = runner.invoke(app, args)
    assert again.exit_code == 0
    assert json.loads((out / "summary.json").read_text())["skipped_done"] == 3


def test_missing_yunet_model_offline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEEPFAKE_LAB_CACHE", str(tmp_path / "cache"))

    def offline(*args, **kwargs) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    src = _images(tmp_path / "src", 1)
    result = runner.invoke(app, ["data", "prepare", str(src), str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: YuNet face model not found")
    assert "--face-model" in lines[0] and "--detector haar" in lines[0]


def test_bad_option_value_is_a_user_error(tmp_path: Path) -> None:
    src = _images(tmp_path / "src", 1)
    result = runner.invoke(
        app, ["data", "prepare", str(src), str(tmp_path / "out"), "--size", "5", "--no-align"]
    )
    assert result.exit_code == 2
    assert "error: --size must be between 16 and 4096" in result.output


def test_output_that_is_a_file_exits_2_with_one_error_line(tmp_path: Path) -> None:
    src = _images(tmp_path / "src", 1)
    (tmp_path / "out.png").write_bytes(b"x")
    args = ["data", "prepare", str(src), str(tmp_path / "out.png"), "--no-align", "--size", "16"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the output ")
    assert lines[0].endswith("exists and is not a folder")
