"""Pseudo-fakes made on the fly from the real faces of a detection set."""

import numpy as np
import pytest
import torch

from deepfake_lab.data.detection import FAKE, REAL, DetectionDataset, DetectionSample
from deepfake_lab.data.procedural import render_faces
from deepfake_lab.data.pseudo import PseudoFakeSet, check_kinds
from deepfake_lab.errors import UserError
from deepfake_lab.faces.landmarks import Landmarker


def _base(n_real=6, n_fake=2, size=32):
    imgs = render_faces(n_real + n_fake, size, seed=0)
    labels = [REAL] * n_real + [FAKE] * n_fake
    samples = [
        DetectionSample(f"/x/{i}.png", lab, "real" if lab == REAL else "gan")
        for i, lab in enumerate(labels)
    ]
    images = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()
    return DetectionDataset(images, torch.tensor(labels), samples)


def test_one_virtual_fake_per_real_and_balanced_labels():
    ps = PseudoFakeSet.build(_base(), ["sbi", "sbi-mouth"], Landmarker("template"), paired=False)
    assert ps.n_pseudo == 6 and len(ps) == 14
    assert ps.labels.tolist() == [0] * 6 + [1] * 2 + [1] * 6
    assert ps.counts() == {"real": 6, "gan": 2, "sbi+sbi-mouth": 6}
    assert set(ps.landmark_sources) == {"template"}


def test_batches_are_deterministic_per_generator_state_and_labelled():
    ps = PseudoFakeSet.build(_base(), ["sbi"], Landmarker("template"), paired=False)
    idx = torch.tensor([0, 7, 8, 13])
    xa, ya = ps.batch(idx, rng=np.random.default_rng(4))
    xb, yb = ps.batch(idx, rng=np.random.default_rng(4))
    assert torch.equal(xa, xb) and ya.tolist() == [0.0, 1.0, 1.0, 1.0]
    assert xa.shape == (4, 3, 32, 32) and -1.0 <= xa.min() and xa.max() <= 1.0
    xc, _ = ps.batch(idx, rng=np.random.default_rng(5))
    assert not torch.equal(xa[2:], xc[2:])  # pseudo-fakes are made anew per draw
    assert torch.equal(xa[:2], xc[:2])  # base images are as stored
    with pytest.raises(ValueError, match="rng"):
        ps.batch(idx)


def test_paired_batches_bring_each_real_faces_pseudo_fake_along():
    ps = PseudoFakeSet.build(_base(), ["sbi"], Landmarker("template"))
    assert len(ps) == 8 and ps.labels.tolist() == [0] * 6 + [1] * 2
    x, y = ps.batch(torch.tensor([3, 6, 1]), rng=np.random.default_rng(0))
    # Two reals (3, 1) and a real fake (6), then the pseudo-fakes of 3 and 1 in that order.
    assert y.tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]
    diff = lambda a, b: (x[a] - x[b]).abs().mean().item()  # noqa: E731
    assert diff(3, 0) < diff(3, 2) and diff(4, 2) < diff(4, 0)  # each fake beside its own face


def test_materialised_validation_set_is_fixed_and_names_its_kinds():
    ps = PseudoFakeSet.build(_base(), ["sbi", "sbi-mouth"], Landmarker("template"))
    a, b = ps.materialise(seed=1), ps.materialise(seed=1)
    assert len(a) == 14 and torch.equal(a.images, b.images)
    assert set(a.sources[8:]) <= {"sbi", "sbi-mouth"} and a.labels[8:].eq(FAKE).all()
    # Each pseudo-fake differs from the real face it was made from.
    for j in range(6):
        assert not torch.equal(a.images[8 + j], a.images[j])


def test_kinds_are_checked():
    assert check_kinds(["sbi", "sbi", "sbi-mouth"]) == ["sbi", "sbi-mouth"]
    with pytest.raises(UserError, match="sbi, sbi-mouth"):
        check_kinds(["faceswap"])
    with pytest.raises(UserError, match="real faces"):
        PseudoFakeSet.build(_base(0, 3), ["sbi"], Landmarker("template"))


def test_seam_batches_are_the_same_images_with_their_blend_boundaries():
    from deepfake_lab.augment.resample import Compose
    from deepfake_lab.augment.robustness import RobustAugment

    ps = PseudoFakeSet.build(_base(), ["sbi"], Landmarker("template"))
    idx = torch.tensor([3, 6, 1])
    aug = Compose((RobustAugment(flip=0.5),))
    gens = lambda: [np.random.default_rng([9, k]) for k in range(3)]  # noqa: E731
    x, y = ps.batch(idx, augment=aug, rng=gens())
    xs, ys, seams, known = ps.seam_batch(idx, augment=aug, rng=gens())
    assert torch.equal(x, xs) and torch.equal(y, ys)  # the very same draws
    assert seams.shape == (5, 32, 32) and known.tolist() == [True, False, True, True, True]
    assert seams[:3].abs().sum() == 0  # reals (and the folder fake: unknown) are empty
    assert 0 < seams[3:].amax() <= 1
    # Without augmentation the boundary is 4 m (1 - m) of the blend weights make() returns.
    _, _, plain, _ = ps.seam_batch(torch.tensor([3]), rng=np.random.default_rng(2))
    _, mask, _ = ps.make(ps._position[3], np.random.default_rng(2))
    np.testing.assert_allclose(plain[1].numpy(), 4 * mask * (1 - mask), atol=1e-6)


def test_seam_masks_follow_a_flip_of_their_image():
    from deepfake_lab.augment.resample import Compose
    from deepfake_lab.augment.robustness import RobustAugment

    ps = PseudoFakeSet.build(_base(), ["sbi"], Landmarker("template"))
    flip = Compose((RobustAugment(flip=1.0),))
    _, _, plain, _ = ps.seam_batch(torch.tensor([0]), rng=np.random.default_rng(5))
    _, _, flipped, _ = ps.seam_batch(torch.tensor([0]), augment=flip, rng=np.random.default_rng(5))
    assert torch.equal(flipped[1], plain[1].flip(-1))
