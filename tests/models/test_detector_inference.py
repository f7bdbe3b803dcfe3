"""The fused, channels-last inference copy that every scoring path uses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepfake_lab.data.detection import DetectionDataset, collect_samples
from deepfake_lab.models.detectors import DETECTORS, build_detector
from deepfake_lab.models.detectors import inference as inference_mod
from deepfake_lab.models.detectors.inference import inference_copy
from deepfake_lab.models.detectors.loading import load_detector
from deepfake_lab.training.detector_validation import predict_logits
from detector_toys import make_toy_sets, train_toy
from models.test_detectors import TINY, _images


def _trained_bn(name: str) -> nn.Module:
    """A tiny detector whose batch-norm statistics are not the identity (so folding them
    changes the weights and a wrong fold would show)."""
    torch.manual_seed(0)
    det = build_detector(name, **TINY[name])
    det.train()
    with torch.no_grad():
        for _ in range(3):
            det(_images(det.size, seed=1, n=8) * 3 + 0.5)
    return det.eval()


@pytest.mark.parametrize("name", DETECTORS.names())
def test_inference_copy_scores_like_the_original(name):
    det = _trained_bn(name)
    before = {k: v.clone() for k, v in det.state_dict().items()}
    fast = inference_copy(det)
    x = _images(det.size, seed=3, n=5)
    with torch.no_grad():
        torch.testing.assert_close(fast.module(x), det(x), rtol=1e-4, atol=1e-5)
    # The original is untouched: same weights, still a plain module with its batch-norms.
    for k, v in det.state_dict().items():
        assert torch.equal(v, before[k]), k
    bn = sum(isinstance(m, nn.BatchNorm2d) for m in det.modules())
    left = sum(isinstance(m, nn.BatchNorm2d) for m in fast.module.modules())
    assert fast.folded == bn - left
    if name in ("resnet", "npr", "resnet-cifar"):  # every batch-norm follows a plain conv
        assert bn > 0 and left == 0, fast.note
    assert not any(p.requires_grad for p in fast.module.parameters())


def test_a_copy_that_disagrees_is_never_used(monkeypatch):
    det = _trained_bn("resnet")

    real_fuse = inference_mod.fuse_conv_bn_eval

    def wrong_fold(conv, bn):
        out = real_fuse(conv, bn)
        with torch.no_grad():
            out.weight.mul_(1.5)
        return out

    monkeypatch.setattr(inference_mod, "fuse_conv_bn_eval", wrong_fold)
    fast = inference_copy(det)
    assert not fast.fused and "disagreed" in fast.note
    x = _images(det.size, seed=4)
    with torch.no_grad():
        assert torch.equal(fast.module(x), det(x))


def test_calibration_is_fitted_on_the_numbers_detect_scores(tmp_path):
    """The validation logits the threshold was fitted on are bit-identical to what the
    loaded detector computes for the same images, so decisions at the threshold agree."""
    root = make_toy_sets(tmp_path / "toy", n=16)
    run = train_toy(root, model="resnet", epochs=1, kwargs="{width: 4}")
    det = load_detector(run)
    assert det.scorer.fused
    data = DetectionDataset.from_samples(collect_samples([root / "real"], [root / "fake"]), 16)
    ours = predict_logits(det.model, data, torch.device("cpu"))
    x, _ = data.batch(torch.arange(len(data)), torch.device("cpu"))
    assert torch.equal(torch.from_numpy(ours).float(), det.logits(x))
