"""Detector training with pseudo-fakes and the resolution checks, end to end."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_lab.data.procedural import render_faces
from deepfake_lab.errors import UserError
from deepfake_lab.runs.checkpoint import list_checkpoints, load_checkpoint
from deepfake_lab.training.detector_launch import train_detector
from interrupts import signal_at_step


@pytest.fixture(scope="module")
def reals(procedural_reals):
    return procedural_reals


def _train(reals, tmp_path, name, epochs=2, fake=None, extra=(), **kw):
    return train_detector(
        [reals],
        fake,
        model="npr",
        size=32,
        epochs=epochs,
        out=tmp_path / "runs",
        name=name,
        progress=False,
        tensorboard=False,
        overrides=[
            "train.batch=8",
            "model.kwargs={width: 8}",
            "data.landmarks=template",
            "train.patience=10",
            *extra,
        ],
        **kw,
    )


def test_real_faces_alone_train_a_detector_and_the_report_shows_the_pseudo_fakes(reals, tmp_path):
    res = _train(reals, tmp_path, "sbi", pseudo_fake=["sbi", "sbi-mouth"])
    assert res.status == "done" and res.best is not None
    run = res.run_dir
    assert (run / "pseudo_fakes.png").is_file()
    with Image.open(run / "pseudo_fakes.png") as im:
        assert im.size[1] > 4 * 32  # four rows: real, fake, mask, difference
    html = (run / "index.html").read_text()
    assert "Pseudo-fakes" in html and "pseudo_fakes.png" in html and "sbi, sbi-mouth" in html
    log = (run / "log.txt").read_text()
    assert "'sbi+sbi-mouth'" in log and "landmarks: template" in log
    assert json.loads((run / "calibration.json").read_text())["temperature"] > 0


def test_pseudo_fake_runs_resume_exactly(reals, tmp_path, monkeypatch):
    from deepfake_lab.training.detector import DetectorTrainer

    straight = _train(reals, tmp_path, "a", pseudo_fake=["sbi"])
    with signal_at_step(monkeypatch, DetectorTrainer, 3):
        stopped = _train(reals, tmp_path, "b", pseudo_fake=["sbi"])
    assert stopped.status == "interrupted"
    resumed = _train(reals, tmp_path, "b", pseudo_fake=["sbi"], resume=stopped.run_dir)
    a = load_checkpoint(list_checkpoints(straight.run_dir / "checkpoints")[-1])
    b = load_checkpoint(list_checkpoints(resumed.run_dir / "checkpoints")[-1])
    assert a["step"] == b["step"]
    for k, t in a["model"].items():
        assert torch.equal(t, b["model"][k]), k


def test_fakes_of_another_native_size_are_refused_then_floored(reals, tmp_path):
    small = tmp_path / "gan16"
    small.mkdir()
    for i, im in enumerate(render_faces(24, 16, seed=3)):
        Image.fromarray(im).save(small / f"{i:03d}.png")
    with pytest.raises(UserError, match="resolution history") as err:
        _train(reals, tmp_path, "refused", fake=[small])
    assert "data.native_size=floor" in str(err.value)
    assert not (tmp_path / "runs").exists()  # refused before anything was written
    res = _train(
        reals, tmp_path, "floored", epochs=1, fake=[small], extra=["data.native_size=floor"]
    )
    log = (res.run_dir / "log.txt").read_text()
    assert "brought down to 16 px" in log

    # Scoring floors its inputs as training did: checkpoint, export and `detect` alike.
    from deepfake_lab.augment.resample import to_native_floor
    from deepfake_lab.detect import detect_images
    from deepfake_lab.export import export_detector
    from deepfake_lab.models.detectors.loading import load_detector

    det = load_detector(res.run_dir)
    assert det.native_floor == 16
    sharp = np.asarray(Image.open(sorted(reals.iterdir())[0]).convert("RGB"))
    assert np.array_equal(det.prepare(sharp), to_native_floor(sharp, 16))
    exported = load_detector(export_detector(res.run_dir, tmp_path / "export").folder)
    assert exported.native_floor == 16
    sharp_file = tmp_path / "sharp.png"
    Image.fromarray(sharp).save(sharp_file)
    (rec,) = detect_images(res.run_dir, [sharp_file])

    # The network itself, given the floored pixels (flooring is not idempotent, so a file of
    # floored pixels would be floored once more).
    def prob(img):
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 127.5 - 1
        return det.probabilities_from_logits(det.logits(x).numpy())[0]

    assert rec["probability"] == pytest.approx(prob(to_native_floor(sharp, 16)), abs=1e-5)
    assert abs(prob(sharp) - rec["probability"]) > 1e-5  # the floor matters to this model
    # A detector trained without the floor scores the images as decoded.
    plain = load_detector(_train(reals, tmp_path, "plain", epochs=1, pseudo_fake=["sbi"]).run_dir)
    assert plain.native_floor is None
    assert np.array_equal(plain.prepare(sharp), sharp)


def test_the_resampling_chain_is_on_by_default_and_reaches_every_image(reals, tmp_path):
    from deepfake_lab.training.detector import build_augment
    from deepfake_lab.training.detector_config import DetectorConfig

    cfg = DetectorConfig()
    ops = build_augment(cfg).ops
    assert type(ops[0]).__name__ == "ResampleChain"
    off = DetectorConfig.model_validate(
        {"resample": {"enabled": False}, "augment": {"enabled": False}}
    )
    assert build_augment(off) is None
    img = np.asarray(Image.open(next(iter(sorted(reals.iterdir())))).convert("RGB"))
    rng = np.random.default_rng(0)
    changed = [not np.array_equal(ops[0](img, rng), img) for _ in range(20)]
    assert 0 < sum(changed) < 20  # random: some images keep their history, most do not


def _fake_sources(data):
    return {s.source for s, y in zip(data.samples, data.labels.tolist(), strict=True) if y == 1}


def test_validation_can_hold_pseudo_fakes_of_a_kind_not_trained_on(reals):
    from deepfake_lab.training.detector_config import DetectorConfig
    from deepfake_lab.training.detector_launch import load_detector_data

    base = {"real": [str(reals)], "pseudo_fake": ["sbi"], "landmarks": "template"}
    cfg = DetectorConfig.model_validate(
        {"data": {**base, "val_pseudo_fake": "sbi-mouth"}, "model": {"size": 32}}
    )
    train, val, _ = load_detector_data(cfg, None)
    assert train.kinds == ["sbi"]
    assert _fake_sources(val) == {"sbi-mouth"}
    # The default: validation holds the training kinds.
    _, val, _ = load_detector_data(
        DetectorConfig.model_validate({"data": base, "model": {"size": 32}}), None
    )
    assert _fake_sources(val) == {"sbi"}
    with pytest.raises(Exception, match="val_pseudo_fake needs data.pseudo_fake"):
        DetectorConfig.model_validate({"data": {"val_pseudo_fake": ["sbi"]}})


def test_sbi_resample_reaches_the_training_and_validation_blends(reals):
    from deepfake_lab.training.detector_config import DetectorConfig
    from deepfake_lab.training.detector_launch import load_detector_data

    base = {"real": [str(reals)], "pseudo_fake": ["sbi"], "landmarks": "template"}
    train, _, _ = load_detector_data(
        DetectorConfig.model_validate({"data": base, "model": {"size": 32}}), None
    )
    assert train.resample == "bilinear"
    cfg = DetectorConfig.model_validate(
        {"data": {**base, "sbi_resample": "mixed"}, "model": {"size": 32}}
    )
    train_m, val_m, _ = load_detector_data(cfg, None)
    assert train_m.resample == "mixed"
    _, val_b, _ = load_detector_data(
        DetectorConfig.model_validate({"data": base, "model": {"size": 32}}), None
    )
    # Validation's fixed pseudo-fakes are made with the same filters as training's.
    fakes_m = val_m.images[val_m.labels == 1]
    fakes_b = val_b.images[val_b.labels == 1]
    assert fakes_m.shape == fakes_b.shape and not torch.equal(fakes_m, fakes_b)
    with pytest.raises(Exception, match="sbi_resample"):
        DetectorConfig.model_validate({"data": {**base, "sbi_resample": "nearest"}})
    with pytest.raises(UserError, match="unknown SBI resampling"):
        dataclasses.replace(train, resample="nearest")  # the API refuses it at build time
