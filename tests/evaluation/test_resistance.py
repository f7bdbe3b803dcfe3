"""Detection resistance of a generator: fresh detector on held-out data, existing detectors."""

import json

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from deepfake_lab.errors import UserError
from deepfake_lab.evaluation.resistance import (
    detection_resistance,
    resistance_from_auc,
    wilson_interval,
)
from deepfake_lab.io import read_jsonl
from tiny_configs import GAN_TINY

DET_TINY = ["train.batch=16", "model.kwargs={width: 4}"]


@pytest.fixture(scope="module")
def gan(tmp_path_factory):
    """40 real 16 px faces and a DCGAN trained on them for two steps."""
    from deepfake_lab.data.procedural import render_faces
    from deepfake_lab.training.launch import train_gan

    root = tmp_path_factory.mktemp("gan")
    (root / "real").mkdir()
    for i, im in enumerate(render_faces(40, 16, seed=0)):
        Image.fromarray(im).save(root / "real" / f"{i:03d}.png")
    res = train_gan(
        root / "real",
        overrides=GAN_TINY,
        arch="dcgan",
        kimg=0.008,
        out=root / "runs",
        name="gan",
        progress=False,
        tensorboard=False,
    )
    return res.run_dir, root / "real"


def test_held_out_auc_with_interval_and_no_held_out_real_in_training(gan, tmp_path):
    run, real = gan
    r = detection_resistance(
        run, real, num=30, epochs=2, overrides=DET_TINY, out=tmp_path / "runs", n_boot=200,
        progress=False,
    )  # fmt: skip
    lo, hi = r["roc_auc_interval"]
    assert 0.0 <= lo <= r["roc_auc"] <= hi <= 1.0
    assert r["resistance"] == resistance_from_auc(r["roc_auc"])
    assert r["resistance_interval"][0] <= r["resistance"] <= r["resistance_interval"][1]
    assert r["indistinguishable"] == (lo <= 0.5) and r["size"] == 16
    out = tmp_path / "runs" / "00000-resistance"
    assert len(list((out / "samples").glob("seed*.png"))) == 30
    # Reals are capped at --num (balanced classes); every image is in exactly one part.
    n_real = r["n_train"]["real"] + r["n_test"]["real"]
    assert n_real == 30 and r["n_train"]["generated"] + r["n_test"]["generated"] == 30
    train = {rec["path"] for rec in read_jsonl(out / "train.jsonl")}
    test = read_jsonl(out / "test.jsonl")
    test_reals = {rec["path"] for rec in test if rec["label"] == "real"}
    assert len(test_reals) == r["n_test"]["real"] >= 5
    assert not train & {rec["path"] for rec in test}
    cfg = yaml.safe_load(open(f"{r['detector_run']}/config.yaml"))
    assert cfg["data"]["manifest"] == str(out / "train.jsonl")  # the only data it saw
    assert not cfg["data"]["real"] and not cfg["data"]["fake"]
    assert r["held_out"]["n"] == len(test)
    assert json.loads((out / "resistance.json").read_text())["roc_auc"] == r["roc_auc"]

    # The CLI, measuring that fresh detector as an existing one on new samples.
    from deepfake_lab.cli.app import app

    args = ["eval", "resistance", str(run), "--real", str(real), "--num", "12"]
    args += ["--model", "spectrum", "--epochs", "1", "--set", "model.kwargs={bins: 8}"]
    args += ["--set", "train.batch=16", "--seed", "100", "--bootstrap", "50", "--no-progress"]
    args += ["--detector", r["detector_run"], "--out", str(tmp_path / "runs")]
    args += ["--json", str(tmp_path / "res.json")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "ROC-AUC" in res.output and "detection rate" in res.output
    row = json.loads((tmp_path / "res.json").read_text())["detectors"][0]
    assert row["n"] == 12 and row["detector"] == r["detector_run"]
    assert row["interval"][0] <= row["detection_rate"] <= row["interval"][1]
    assert 0.0 <= row["false_positive_rate"] <= 1.0 and row["calibrated"]


def test_errors_come_before_any_sampling(gan, tmp_path):
    run, real = gan
    with pytest.raises(UserError, match="detector not found"):
        detection_resistance(run, real, num=8, out=tmp_path / "runs", detectors=[tmp_path / "x"])
    with pytest.raises(UserError, match="at least 4"):
        detection_resistance(run, real, num=2, out=tmp_path / "runs")
    with pytest.raises(UserError, match="unknown detector"):
        detection_resistance(run, real, num=8, model="nope", out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_wilson_interval_and_resistance_scale():
    lo, hi = wilson_interval(10, 10)
    assert 0.65 < lo < 0.75 and hi == 1.0  # all hits: still an interval, inside [0, 1]
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(1 - hi) and 0.40 < lo < 0.41
    assert resistance_from_auc(0.5) == 1.0 and resistance_from_auc(0.3) == 1.0
    assert resistance_from_auc(1.0) == 0.0 and resistance_from_auc(0.75) == 0.5
    assert resistance_from_auc(None) is None
