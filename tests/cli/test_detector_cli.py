"""train detector -> eval detector -> detect, through the CLI, on a toy real/fake set."""

import csv
import json

import pytest
from typer.testing import CliRunner

from deepfake_lab.cli.app import app
from detector_toys import make_toy_sets

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = make_toy_sets(tmp_path_factory.mktemp("det"), n=40)
    res = runner.invoke(
        app,
        [
            "train",
            "detector",
            "--real",
            str(root / "real"),
            "--fake",
            str(root / "fake"),
            "--model",
            "npr",
            "--size",
            "16",
            "--epochs",
            "4",
            "--out",
            str(root / "runs"),
            "--no-progress",
            "--set",
            "train.batch=16",
            "--set",
            "model.kwargs={width: 8}",
        ],
    )
    assert res.exit_code == 0, res.output
    return root, root / "runs" / "00000-detector"


def test_eval_detector_writes_json_and_curves(trained):
    root, run = trained
    out = root / "eval"
    res = runner.invoke(
        app,
        [
            "eval",
            "detector",
            str(run),
            "--real",
            str(root / "real"),
            "--fake",
            str(root / "fake"),
            "--json",
            str(out / "r.json"),
            "--out",
            str(out),
            "--bootstrap",
            "100",
        ],
    )
    assert res.exit_code == 0, res.output
    r = json.loads((out / "r.json").read_text())
    for key in (
        "roc_auc",
        "ap",
        "eer",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "ece",
        "threshold",
    ):
        assert key in r
    assert r["n_real"] == r["n_fake"] == 40 and r["calibrated"] is True
    assert r["roc_auc"] >= 0.9
    lo, hi = r["intervals"]["roc_auc"]
    assert lo <= r["roc_auc"] <= hi
    assert set(r["robustness"]) >= {"jpeg75", "resize0.5", "blur1"}
    assert [row["source"] for row in r["per_source"]] == ["fake"]
    for png in ("roc.png", "pr.png", "reliability.png", "confusion.png", "scores.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_detect_scans_files_and_folders(trained, tmp_path):
    root, run = trained
    (tmp_path / "broken.png").write_bytes(b"not an image")
    res = runner.invoke(
        app,
        [
            "detect",
            str(run),
            str(root / "fake"),
            str(tmp_path / "broken.png"),
            "--csv",
            str(tmp_path / "d.csv"),
            "--json",
            str(tmp_path / "d.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(tmp_path / "d.csv")))
    assert len(rows) == 41
    broken = [r for r in rows if r["path"].endswith("broken.png")]
    assert broken[0]["label"] == "error"
    fakes = [r for r in rows if r["label"] == "fake"]
    assert len(fakes) >= 36  # the toy artefact is easy; most fakes are caught
    d = json.loads((tmp_path / "d.json").read_text())
    assert d["calibrated"] and len(d["results"]) == 41
    res = runner.invoke(app, ["detect", str(run), str(tmp_path / "missing")])
    assert res.exit_code == 2 and "not found" in res.output


def test_calibrate_writes_an_export_that_detect_reads(trained, tmp_path):
    root, run = trained
    out = tmp_path / "cal"
    args = ["calibrate", str(run), "--out", str(out), "--real", str(root / "real")]
    res = runner.invoke(
        app, [*args, "--fake", str(root / "fake"), "--method", "fpr", "--target-fpr", "0.05"]
    )
    assert res.exit_code == 0, res.output
    assert "real called fake" in res.output and "export:" in res.output
    meta = json.loads((out / "config.json").read_text())
    assert meta["calibration"]["method"] == "fpr" and meta["calibration"]["target_fpr"] == 0.05
    res = runner.invoke(app, ["detect", str(out), str(root / "fake" / "000.png"), "--no-progress"])
    assert res.exit_code == 0, res.output
    # A user mistake: one line, non-zero exit, no traceback, nothing written.
    res = runner.invoke(app, [*args[:3], str(tmp_path / "x"), *args[4:]])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "--pseudo-fake" in res.output and not (tmp_path / "x").exists()


def test_calibrate_tta_flip_is_stored_and_a_bad_view_refused(trained, tmp_path):
    root, run = trained
    args = ["calibrate", str(run), "--real", str(root / "real"), "--fake", str(root / "fake")]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "cal"), "--tta", "flip"])
    assert res.exit_code == 0, res.output
    assert "test-time view flip" in res.output
    # Three lines, not one line with escaped newlines in it.
    assert "\\x0a" not in res.output and "\nexport: " in res.output
    meta = json.loads((tmp_path / "cal" / "config.json").read_text())
    assert meta["calibration"]["tta"] == "flip"
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "bad"), "--tta", "rotate"])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "unknown test-time view 'rotate'" in res.output and not (tmp_path / "bad").exists()
