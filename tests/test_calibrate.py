"""``calibrate_detector`` / ``deepfake-lab calibrate``: a new threshold on new images, the
weights untouched, written as an export that every reader loads."""

import json

import numpy as np
import pytest
import torch

from deepfake_lab.calibrate import calibrate_detector
from deepfake_lab.data.detection import DetectionDataset, collect_samples
from deepfake_lab.errors import UserError
from deepfake_lab.evaluation.detector_eval import score
from deepfake_lab.metrics.calibration import threshold_at_eer, threshold_at_fpr
from deepfake_lab.models.detectors.loading import load_detector
from detector_toys import make_toy_sets, run_toy_training


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_sets(tmp_path_factory.mktemp("toy"), n=32)


@pytest.fixture(scope="module")
def run(toy, tmp_path_factory):
    res = run_toy_training(toy, tmp_path_factory.mktemp("runs"), "npr", 2)
    assert res.status == "done"
    return res.run_dir


def _logits(source, toy):
    det = load_detector(source)
    data = DetectionDataset.from_samples(
        collect_samples([toy / "real"], [toy / "fake"]), det.size, det.reencode, det.native_floor
    )
    return det, data.labels.numpy(), score(det, data, torch.device("cpu"))


def test_fpr_calibration_sets_the_threshold_and_keeps_the_weights(toy, run, tmp_path):
    res = calibrate_detector(
        run, tmp_path / "cal", [toy / "real"], [toy / "fake"], method="fpr", target_fpr=0.1
    )
    old, labels, logits = _logits(run, toy)
    new = load_detector(res.folder)
    # The threshold is the one the target asks for on exactly these images' logits.
    assert new.logit_threshold == pytest.approx(threshold_at_fpr(labels, logits, 0.1))
    assert new.calibrated and new.calibration["method"] == "fpr"
    assert new.logit_threshold != pytest.approx(old.logit_threshold)
    called_fake = logits >= new.logit_threshold
    assert called_fake[labels == 0].mean() <= 0.1
    assert res.after["real_called_fake"] == pytest.approx(called_fake[labels == 0].mean())
    assert res.after["fake_called_fake"] == pytest.approx(called_fake[labels == 1].mean())
    assert res.before["real_called_fake"] == pytest.approx(
        (logits[labels == 0] >= old.logit_threshold).mean()
    )
    for k, t in old.model.state_dict().items():
        assert torch.equal(t, new.model.state_dict()[k]), k
    meta = json.loads((res.folder / "config.json").read_text())
    assert meta["calibrated_on"]["images"] == {"real": 32, "fake": 32}
    assert meta["calibrated_on"]["previous"] == old.calibration
    assert (res.folder / "scores.png").stat().st_size > 0
    assert "new threshold" in (res.folder / "index.html").read_text()
    # EER on the same images: another threshold, from the same logits.
    eer = calibrate_detector(res.folder, tmp_path / "eer", [toy / "real"], [toy / "fake"])
    assert load_detector(eer.folder).logit_threshold == pytest.approx(
        threshold_at_eer(labels, logits)
    )


def test_real_faces_with_pseudo_fakes_are_enough(toy, run, tmp_path):
    res = calibrate_detector(
        run, tmp_path / "sbi", [toy / "real"], pseudo_fake=["sbi"], landmarks="template"
    )
    assert res.counts == {"real": 32, "sbi": 32}
    again = calibrate_detector(
        run, tmp_path / "sbi2", [toy / "real"], pseudo_fake=["sbi"], landmarks="template"
    )
    assert again.record == res.record  # same seed, same pseudo-fakes, same threshold
    assert np.isfinite(res.record["logit_threshold"])


def test_user_errors_write_nothing(toy, run, tmp_path):
    out = tmp_path / "x"
    with pytest.raises(UserError, match="needs fake images"):
        calibrate_detector(run, out, [toy / "real"])
    with pytest.raises(UserError, match="method"):
        calibrate_detector(run, out, [toy / "real"], [toy / "fake"], method="auc")
    with pytest.raises(UserError, match="target_fpr"):
        calibrate_detector(run, out, [toy / "real"], [toy / "fake"], method="fpr", target_fpr=0)
    assert not out.exists()
    (out / "keep.txt").parent.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        calibrate_detector(run, out, [toy / "real"], [toy / "fake"])
    assert (out / "keep.txt").read_text() == "mine"


def test_a_fusion_is_refitted_not_recalibrated(toy, run, tmp_path):
    from deepfake_lab.training.fusion import train_fusion

    fusion = train_fusion([run, run], [toy / "real"], [toy / "fake"], out=tmp_path, name="f")
    with pytest.raises(UserError, match="train fusion"):
        calibrate_detector(fusion, tmp_path / "c", [toy / "real"], [toy / "fake"])
