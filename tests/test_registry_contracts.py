"""Contracts every registered face detector and feature extractor keeps, like the model
contract tests: a new entry in either registry is tested here without a line added."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_path
from deepfake_lab.faces.detectors import FACE_DETECTORS, Face
from deepfake_lab.metrics.features import FEATURE_EXTRACTORS


def _face_detector(name: str):
    if name == "yunet":
        return FACE_DETECTORS.build(
            name, face_model=shared_path("models/face_detection_yunet.onnx")
        )
    return FACE_DETECTORS.build(name)


def _portrait() -> np.ndarray:
    folder = shared_path("data", "portraits-cc0-256")
    first = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".png"})[0]
    return np.asarray(Image.open(first).convert("RGB"))


@pytest.mark.parametrize("name", FACE_DETECTORS.names())
def test_face_detector_contract(name: str) -> None:
    det = _face_detector(name)
    assert det.registry_name == name
    image = _portrait()
    h, w = image.shape[:2]
    faces = det.detect(image)
    assert faces, f"{name} finds no face in a portrait"
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)  # most confident first
    for f in faces:
        assert isinstance(f, Face)
        x, y, bw, bh = f.box
        assert np.isfinite([x, y, bw, bh]).all() and bw > 0 and bh > 0
        assert -bw <= x < w and -bh <= y < h
        assert f.landmarks.shape == (5, 2) and np.isfinite(f.landmarks).all()
    # Nothing to find, and images too thin to hold a face: an empty list, never an error.
    assert det.detect(np.zeros((4, 300, 3), np.uint8)) == []
    assert all(isinstance(f, Face) for f in det.detect(np.full((64, 64, 3), 128, np.uint8)))
    # Same image, same answer.
    again = det.detect(image)
    assert [f.box for f in again] == [f.box for f in faces]


def _feature_extractor(name: str, tmp_path: Path):
    if name == "inception-v3-fid":
        from deepfake_lab.metrics.features.inception_net import random_fid_state_dict

        weights = tmp_path / "random-inception.pth"
        torch.save(random_fid_state_dict(0), weights)
        # The released weights are not available offline; random ones keep the contract.
        return FEATURE_EXTRACTORS.build(name, weights=weights, allow_unverified=True)
    if name.endswith("-cifar"):
        file = {"resnet56-cifar": "resnet56-4bfd9763.th", "resnet20-cifar": "resnet20-12fca82f.th"}
        return FEATURE_EXTRACTORS.build(name, weights=shared_path("models", file[name]))
    if name == "torchscript":
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
        )
        path = tmp_path / "tiny.pt"
        torch.jit.save(torch.jit.script(net.eval()), path)
        with pytest.warns(UserWarning, match="running the code"):  # our own file: trusted
            return FEATURE_EXTRACTORS.build(name, weights=path, trust=True)
    pytest.fail(f"add a way to build the {name!r} feature extractor to this contract test")


@pytest.mark.parametrize("name", FEATURE_EXTRACTORS.names())
def test_feature_extractor_contract(name: str, tmp_path: Path) -> None:
    fx = _feature_extractor(name, tmp_path)
    assert fx.name == name and fx.dim > 0
    # Only the Inception-v3 space may call its Frechet distance "FID", and only with the
    # released weights (these random ones are not).
    assert fx.label != "FID" and fx.label
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=gen) * 2 - 1
    f = fx.features(x)
    assert f.shape == (4, fx.dim) and f.dtype == torch.float32 and torch.isfinite(f).all()
    # Frozen and in eval mode whatever the caller does: a feature does not depend on the
    # rest of its batch, nor on train().
    fx.train()
    assert not fx.training
    torch.testing.assert_close(fx.features(x[:1]), f[:1], rtol=1e-4, atol=1e-4)
    assert not any(p.requires_grad for p in fx.parameters())
    key = fx.cache_key()
    assert key["name"] == name
    if fx.is_classifier:
        feats, logits = fx.features_and_logits(x)
        torch.testing.assert_close(feats, f, rtol=1e-4, atol=1e-4)
        assert logits.shape[0] == 4
