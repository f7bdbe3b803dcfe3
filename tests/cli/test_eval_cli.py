"""``deepfake-lab eval gan`` through typer's CliRunner, with a test-only feature space."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from deepfake_lab.cli.app import app
from deepfake_lab.metrics.features import FEATURE_EXTRACTORS, FeatureExtractor

runner = CliRunner()


class TinyFeatures(FeatureExtractor):
    """4x4 average pooling and a fixed random projection to 6 dims; a 4-class head."""

    name = "tiny-cli"
    label = "FD-TINY"
    dim = 6
    is_classifier = True

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("proj", torch.randn(48, 6, generator=g) / 48**0.5)
        self.register_buffer("head", torch.randn(6, 4, generator=g))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x.float(), 4).flatten(1) @ self.proj

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x) @ self.head


@pytest.fixture(autouse=True)
def _tiny_space(monkeypatch, tmp_path):
    monkeypatch.setitem(FEATURE_EXTRACTORS._entries, "tiny-cli", TinyFeatures)
    monkeypatch.setenv("DEEPFAKE_LAB_CACHE", str(tmp_path / "cache"))


def _split(faces: Path, tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    for i, p in enumerate(sorted(faces.iterdir())):
        dest = a if i % 2 else b
        dest.mkdir(exist_ok=True)
        (dest / p.name).write_bytes(p.read_bytes())
    return a, b


def test_folder_vs_folder_prints_the_label_and_writes_json(tiny_faces, tmp_path):
    fake, real = _split(tiny_faces, tmp_path)
    out = tmp_path / "out" / "metrics.json"
    args = ["eval", "gan", str(fake), "--ref", str(real), "--features", "tiny-cli"]
    args += ["--metrics", "fid,kid,pr,dc,is", "--json", str(out), "--no-progress"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "FD-TINY" in res.stdout and "FID" not in res.stdout
    assert "computed and cached" in res.stdout
    data = json.loads(out.read_text())
    for key in (
        "fid",
        "fd_tiny",
        "kid_mean",
        "kid_std",
        "precision",
        "recall",
        "density",
        "coverage",
        "is_mean",
        "is_std",
        "num_fake",
        "num_real",
        "feature_space",
        "label",
        "versions",
        "source",
        "ref",
    ):
        assert key in data, key
    assert data["num_fake"] == data["num_real"] == 12 and data["label"] == "FD-TINY"
    assert data["fid"] == data["fd_tiny"] > 0
    assert not list(out.parent.glob(".*.tmp"))  # written atomically, no leftovers

    again = runner.invoke(app, args[:-3] + ["--no-progress"])
    assert again.exit_code == 0 and "reused" in again.stdout


def test_unknown_metric_exits_2_with_one_line(tiny_faces):
    args = ["eval", "gan", str(tiny_faces), "--ref", str(tiny_faces), "--metrics", "fid,fvd"]
    res = runner.invoke(app, args + ["--features", "tiny-cli"])
    assert res.exit_code == 2
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in res.output
    assert err.startswith("error: unknown metric 'fvd'") and "fid, kid, is, pr, dc" in err


def test_missing_weights_exits_2(tiny_faces):
    res = runner.invoke(app, ["eval", "gan", str(tiny_faces), "--ref", str(tiny_faces)])
    assert res.exit_code == 2 and "--weights" in res.stderr


class _WritesAFile(torch.nn.Module):
    """Features of a module file whose code also writes a file (the issue's case)."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(torch.zeros(1), self.target)
        return x.mean(dim=(2, 3))


def test_torchscript_features_need_the_opt_in_and_warn(tiny_faces, tmp_path):
    import warnings

    target = tmp_path / "written-by-the-module"
    module = tmp_path / "features.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated
        torch.jit.save(torch.jit.script(_WritesAFile(str(target))), module)
    fake, real = _split(tiny_faces, tmp_path)
    args = ["eval", "gan", str(fake), "--ref", str(real), "--features", "torchscript"]
    args += ["--weights", str(module), "--metrics", "fid", "--no-progress"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and not target.exists()
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and "--trust-torchscript" in err and "Traceback" not in err
    res = runner.invoke(app, [*args, "--trust-torchscript"])
    assert res.exit_code == 0, res.output
    assert res.stderr.startswith("warning: running the code in") and str(module) in res.stderr
    assert target.exists()  # it ran: that is what the flag allows


def test_help_says_torchscript_runs_code():
    res = runner.invoke(app, ["eval", "gan", "--help"], env={"COLUMNS": "200"})
    assert "--trust-torchscript" in res.stdout and "RUNS ITS CODE" in res.stdout
