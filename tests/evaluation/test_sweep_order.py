"""The robustness sweep edits a file before the detector's own input handling."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from PIL import Image

from deepfake_lab.augment.resample import to_native_floor
from deepfake_lab.augment.robustness import PERTURBATIONS
from deepfake_lab.data.dataset import load_rgb
from deepfake_lab.data.detection import FAKE, REAL, DetectionDataset, DetectionSample
from deepfake_lab.evaluation.detector_eval import perturbed


def _samples(tmp_path) -> list[DetectionSample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(4):
        f = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(f)
        out.append(DetectionSample(f, REAL if i % 2 else FAKE, "s"))
    return out


def test_a_flooring_detector_sees_the_edit_floored(tmp_path) -> None:
    samples = _samples(tmp_path)
    det = SimpleNamespace(size=32, native_floor=8, reencode=None)
    data = DetectionDataset.from_samples(samples, 32, native_floor=8)
    edit = PERTURBATIONS["resize0.5+jpeg75"]
    got = perturbed(det, data, edit).images.permute(0, 2, 3, 1).numpy()
    want = np.stack([to_native_floor(edit(load_rgb(s.path, 32)), 8) for s in samples])
    np.testing.assert_array_equal(got, want)
    # Editing the already floored images (the old order) gives other pixels.
    assert not np.array_equal(got, data.map(edit).images.permute(0, 2, 3, 1).numpy())


def test_a_plain_detector_edits_the_decoded_images(tmp_path) -> None:
    samples = _samples(tmp_path)
    det = SimpleNamespace(size=32, native_floor=None, reencode=None)
    data = DetectionDataset.from_samples(samples, 32)
    edit = PERTURBATIONS["jpeg75"]
    a = perturbed(det, data, edit).images
    b = DetectionDataset.from_samples(samples, 32, perturb=edit).images
    assert np.array_equal(a.numpy(), b.numpy())
