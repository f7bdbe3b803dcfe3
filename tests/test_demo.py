"""The demo end to end at 16 px: data drawn, GAN trained, faces sampled, report written."""

import json

import pytest
from typer.testing import CliRunner

from deepfake_lab.cli.app import app

runner = CliRunner()


@pytest.mark.slow
def test_demo_writes_the_whole_loop(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_LAB_CACHE", str(tmp_path / "cache"))
    res = runner.invoke(
        app,
        [
            "demo",
            "--out",
            str(tmp_path),
            "--num-images",
            "48",
            "--no-progress",
            "--set",
            "model.size=16",
            "--set",
            "model.g_channels=8",
            "--set",
            "model.d_channels=8",
            "--set",
            "model.z_dim=16",
            "--set",
            "train.kimg=0.064",
            "--set",
            "train.batch=8",
            "--set",
            "schedule.log_kimg=0.016",
            "--set",
            "schedule.sample_kimg=0.032",
        ],
    )
    assert res.exit_code == 0, res.output
    run = tmp_path / "00000-demo"
    assert "on 48 images" in (run / "log.txt").read_text()
    manifest = json.loads((run / "generated" / "generate.json").read_text())
    assert len(manifest["images"]) == 16 and (run / "generated" / "grid.png").is_file()
    # Every file the demo writes is tagged; at 16 px only the grid is big enough to carry the
    # mark (the 32 px default marks every face: tests/provenance), and the report says so.
    checks = json.loads((run / "generated" / "verify.json").read_text())["results"]
    assert [r["watermark"] for r in checks] == [True] + [False] * 16  # grid.png sorts first
    assert all(r["metadata"]["ai_generated"] for r in checks)
    assert manifest["provenance"]["unmarked_too_small"] == 16
    # The detector's own samples are unmarked on purpose, and their manifest says why.
    det_fakes = json.loads((run / "detector" / "fakes-train" / "generate.json").read_text())
    assert det_fakes["provenance"]["watermark"] is False
    assert "detector data" in det_fakes["provenance"]["opted_out"]
    html = (run / "index.html").read_text()
    for ref in ("generated/grid.png", "loss_curves.png", "samples/reals.png"):
        assert ref in html and (run / ref).is_file()
    assert "procedural faces" in html
    text = " ".join(html.split())
    assert "read the mark back from 1 of 17 files" in text and "16 images under 32 px" in text
    assert "Skipped: no resnet56-4bfd9763.th" in html  # no weights in the test's cache
    assert "Detector (npr) against this GAN" in html and "detector/eval/roc.png" in html
    assert html.count(".gradcam.png") == 8 and (run / "detector" / "eval" / "roc.png").is_file()


@pytest.mark.slow
def test_demo_metrics_section_with_the_resnet56_weights(tmp_path):
    from conftest import shared_path

    weights = shared_path("models", "resnet56-4bfd9763.th")
    res = runner.invoke(
        app,
        [
            "demo",
            "--out",
            str(tmp_path),
            "--num-images",
            "48",
            "--no-progress",
            "--metrics-weights",
            str(weights),
            "--set",
            "model.size=16",
            "--set",
            "model.g_channels=8",
            "--set",
            "model.d_channels=8",
            "--set",
            "model.z_dim=16",
            "--set",
            "train.kimg=0.032",
            "--set",
            "train.batch=8",
        ],
    )
    assert res.exit_code == 0, res.output
    html = (tmp_path / "00000-demo" / "index.html").read_text()
    assert "FD-R56" in html and "held-out real faces" in html and ">FID<" not in html
