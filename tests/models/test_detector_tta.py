"""Test-time views (``model.tta``): the mean logit of an image and its mirror image, fitted
into the calibration and honoured by every scorer that reads it."""

import importlib.util
import json
import typing

import numpy as np
import pytest
import torch

from deepfake_lab.calibrate import calibrate_detector
from deepfake_lab.data.detection import DetectionDataset, collect_samples
from deepfake_lab.errors import UserError
from deepfake_lab.export import export_detector
from deepfake_lab.metrics.calibration import threshold_at_eer
from deepfake_lab.models.detectors import build_detector
from deepfake_lab.models.detectors.fusion import FusionDetector
from deepfake_lab.models.detectors.loading import load_detector
from deepfake_lab.models.detectors.tta import (
    TTA_MODES,
    FlipMean,
    check_tta,
    flip_mean,
    with_tta,
)
from deepfake_lab.training.detector_config import DetectorModelConfig
from deepfake_lab.training.fusion import train_fusion
from detector_toys import make_toy_sets, run_toy_training

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))


def _images(n: int = 4, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def _mirror(x: torch.Tensor) -> torch.Tensor:
    return torch.flip(x, dims=(-1,))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_sets(tmp_path_factory.mktemp("toy"), n=24)


@pytest.fixture(scope="module")
def flip_run(toy, tmp_path_factory):
    res = run_toy_training(
        toy, tmp_path_factory.mktemp("runs"), "flip", 2, extra=["model.tta=flip"]
    )
    assert res.status == "done"
    return res.run_dir


def test_flip_mean_is_the_mean_of_both_views():
    torch.manual_seed(0)
    net = build_detector("npr", size=16, width=8).eval()
    x = _images()
    with torch.no_grad():
        want = (net(x) + net(_mirror(x))) / 2
        got = flip_mean(net, x)
        assert not torch.allclose(net(x), net(_mirror(x)), atol=1e-4)  # not symmetric anyway
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert isinstance(with_tta(net, "flip"), FlipMean) and with_tta(net, "none") is net


def test_the_config_offers_exactly_the_views_the_loader_accepts():
    # The config spells its choices as a Literal (kept light to import); they must not drift.
    assert typing.get_args(DetectorModelConfig.model_fields["tta"].annotation) == TTA_MODES


@pytest.mark.parametrize("bad", ["Flip", "hflip", 1, ["flip"]])
def test_unknown_views_are_refused(bad):
    assert check_tta(None, "x") == "none"
    with pytest.raises(UserError, match="unknown test-time view"):
        check_tta(bad, "x")


def test_a_flip_run_calibrates_and_scores_with_both_views(flip_run):
    record = json.loads((flip_run / "calibration.json").read_text())
    assert record["tta"] == "flip"
    det = load_detector(flip_run)
    assert det.tta == "flip"
    x = _images()
    with torch.no_grad():
        raw = det.model(x)
        want = (raw + det.model(_mirror(x))) / 2
    # The fused scoring path gives the mean of both views: a mirrored image scores alike.
    torch.testing.assert_close(det.logits(x), want, rtol=0, atol=1e-4)
    torch.testing.assert_close(det.logits(_mirror(x)), det.logits(x), rtol=0, atol=1e-4)
    assert isinstance(det.differentiable, FlipMean)  # what attacks go through


def test_calibrate_refits_a_plain_detector_with_the_flip_view(toy, flip_run, tmp_path):
    plain = run_toy_training(toy, tmp_path / "runs", "plain", 1).run_dir
    assert load_detector(plain).tta == "none"
    res = calibrate_detector(plain, tmp_path / "cal", [toy / "real"], [toy / "fake"], tta="flip")
    new = load_detector(res.folder)
    assert new.tta == "flip" and res.record["tta"] == "flip"
    data = DetectionDataset.from_samples(
        collect_samples([toy / "real"], [toy / "fake"]), new.size, new.reencode, new.native_floor
    )
    x, _ = data.batch(torch.arange(len(data)))
    with torch.no_grad():
        mean = ((new.model(x) + new.model(_mirror(x))) / 2).double().numpy()
    assert new.logit_threshold == pytest.approx(
        threshold_at_eer(data.labels.numpy(), mean), abs=1e-4
    )


def test_a_hostile_view_in_an_export_is_refused(flip_run, tmp_path):
    out = export_detector(flip_run, tmp_path / "exp").folder
    assert load_detector(out).tta == "flip"  # the export carries the view
    meta = json.loads((out / "config.json").read_text())
    meta["calibration"]["tta"] = "rotate"
    (out / "config.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="unknown test-time view 'rotate'"):
        load_detector(out)


@pytest.mark.skipif(not HAS_ONNX, reason="onnx, onnxscript and onnxruntime not installed")
def test_the_onnx_graph_scores_with_the_view(flip_run, tmp_path):
    import onnxruntime as ort

    out = export_detector(flip_run, tmp_path / "exp", onnx=True).folder
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    x = _images()
    got = session.run(["logits"], {"images": x.numpy()})[0]
    mirrored = session.run(["logits"], {"images": _mirror(x).numpy()})[0]
    np.testing.assert_allclose(got, mirrored, atol=1e-4)
    np.testing.assert_allclose(got, load_detector(flip_run).logits(x).numpy(), atol=1e-4)


def test_a_flip_member_keeps_its_view_inside_a_fusion(toy, flip_run, tmp_path):
    plain = run_toy_training(toy, tmp_path / "runs", "plain", 1, "resnet").run_dir
    held = make_toy_sets(tmp_path / "held", n=16)
    run = train_fusion([flip_run, plain], [held / "real"], [held / "fake"], out=tmp_path / "f")
    fusion = load_detector(run).model
    assert isinstance(fusion, FusionDetector)
    assert [m["tta"] for m in fusion.member_info] == ["flip", "none"]
    x = _images()
    with torch.no_grad():
        z, feats = fusion.member_outputs(x)
        z_m, feats_m = fusion.member_outputs(_mirror(x))
    torch.testing.assert_close(z[:, 0], z_m[:, 0], rtol=0, atol=1e-4)  # the flip member
    assert not torch.allclose(z[:, 1], z_m[:, 1], atol=1e-4)  # the plain one
    assert feats.shape == (4, fusion.feature_dim())  # features of the images as they are
