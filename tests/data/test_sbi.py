"""Self-blended pseudo-fakes: masks from landmarks, a seam inside them, deterministic."""

import numpy as np
import pytest

from deepfake_lab.data.sbi import blend_mask, outline, self_blend
from deepfake_lab.faces.landmarks import Landmarker, box_from_five, template_points


def _face(size=64):
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([120 + 60 * np.sin(9 * xx), 110 + 50 * np.cos(7 * yy), 100 + 40 * xx], -1)
    return img.astype(np.uint8)


def test_five_point_masks_cover_the_face_or_the_lower_face_only():
    size = 64
    pts = template_points(size)
    rng = np.random.default_rng(0)
    face = blend_mask(pts, size, rng, "face")
    mouth = blend_mask(pts, size, rng, "mouth")
    for m in (face, mouth):
        assert m.dtype == np.float32 and m.shape == (size, size) and 0 <= m.min() <= m.max() <= 1
        assert m[0:3].max() == 0 and m[:, 0:3].max() == 0  # the border is never blended
    nose = tuple(np.round(pts[2]).astype(int))[::-1]
    mouth_c = tuple(np.round((pts[3] + pts[4]) / 2).astype(int))[::-1]
    eye = tuple(np.round(pts[0]).astype(int))[::-1]
    assert face[nose] > 0.9 and face[eye] > 0.5
    assert mouth[mouth_c] > 0.9 and mouth[eye] < 0.01  # a lip-sync seam leaves the eyes alone


def test_68_point_outline_is_the_hull_and_the_mouth_region_sits_below_the_nose():
    rng = np.random.default_rng(1)
    pts = rng.uniform(10, 50, (68, 2))
    hull = outline(pts, "face")
    assert len(hull) >= 3 and hull.min() >= 10 and hull.max() <= 50
    lower = outline(pts, "mouth")
    assert len(lower) >= 3
    with pytest.raises(ValueError):
        outline(pts[:7])


def test_self_blend_is_deterministic_and_changes_pixels_inside_the_mask_only():
    img, pts = _face(), template_points(64)
    a, ma = self_blend(img, pts, np.random.default_rng(5))
    b, mb = self_blend(img, pts, np.random.default_rng(5))
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert a.shape == img.shape and a.dtype == np.uint8
    diff = np.abs(a.astype(int) - img.astype(int)).sum(-1)
    inside, outside = ma > 0.5, ma == 0
    # Whichever copy was jittered, the seam is where the mask is: inside and outside differ
    # from each other in how far they moved from the real face.
    changed_in = diff[inside].mean()
    changed_out = diff[outside].mean()
    assert changed_in != pytest.approx(changed_out, abs=1.0)
    assert not np.array_equal(a, img)


def test_seeds_give_different_pseudo_fakes():
    img, pts = _face(), template_points(64)
    outs = [self_blend(img, pts, np.random.default_rng(s))[0] for s in range(4)]
    assert len({o.tobytes() for o in outs}) == 4


def test_template_landmarker_and_box():
    lm = Landmarker("template")
    pts, src = lm(_face(32))
    assert src == "template" and pts.shape == (5, 2) and lm.kind == "template"
    x, y, w, h = box_from_five(template_points(128))
    assert 0 <= x and x + w <= 128 and y >= 0 and y + h <= 128  # inside an aligned crop


def test_unknown_landmark_source_is_a_user_error():
    from deepfake_lab.errors import UserError

    with pytest.raises(UserError, match="landmark source"):
        Landmarker("eyes")


def _whole_pixel_copy(out, img, reach=3):
    """True when the interior of ``out`` is ``img`` moved by whole pixels."""
    s = img.shape[0]
    inner = out[8 : s - 8, 8 : s - 8]
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            if np.array_equal(inner, img[8 - dy : s - 8 - dy, 8 - dx : s - 8 - dx]):
                return True
    return False


def test_mixed_resampling_sometimes_moves_the_source_by_whole_pixels_only():
    from deepfake_lab.data.sbi import _shift

    img = _face()
    mixed = [
        _whole_pixel_copy(_shift(img, np.random.default_rng(s), "mixed"), img) for s in range(200)
    ]
    bilinear = [_whole_pixel_copy(_shift(img, np.random.default_rng(s)), img) for s in range(50)]
    # One time in four the source is an exact copy, moved: no filter leaves its mark.
    assert 0.15 < np.mean(mixed) < 0.35
    assert not any(bilinear)


def test_mixed_resampling_draws_every_filter_and_bilinear_draws_nothing_extra():
    import cv2

    from deepfake_lab.data.sbi import _MIXED_FILTERS, _filter

    rng = np.random.default_rng(0)
    assert {_filter(rng, "mixed") for _ in range(60)} == set(_MIXED_FILTERS)
    assert cv2.INTER_CUBIC in _MIXED_FILTERS and cv2.INTER_LANCZOS4 in _MIXED_FILTERS
    before = rng.bit_generator.state
    assert _filter(rng, "bilinear") == cv2.INTER_LINEAR
    assert rng.bit_generator.state == before  # the default's pseudo-fakes stay as they were


def test_resample_option_changes_the_blend_and_the_default_is_bilinear():
    img, pts = _face(), template_points(64)
    default = self_blend(img, pts, np.random.default_rng(3))[0]
    bilinear = self_blend(img, pts, np.random.default_rng(3), resample="bilinear")[0]
    outs = [self_blend(img, pts, np.random.default_rng(s), resample="mixed")[0] for s in range(4)]
    assert np.array_equal(default, bilinear)
    assert any(not np.array_equal(o, d) for o, d in zip(
        outs, [self_blend(img, pts, np.random.default_rng(s))[0] for s in range(4)], strict=True
    ))  # fmt: skip
    with pytest.raises(ValueError, match="resample"):
        self_blend(img, pts, np.random.default_rng(0), resample="nearest")


def test_the_config_offers_exactly_the_resamplings_the_blend_knows():
    from typing import get_args

    from deepfake_lab.data.sbi import RESAMPLING
    from deepfake_lab.training.detector_config import DetectorDataConfig

    annotation = DetectorDataConfig.model_fields["sbi_resample"].annotation
    assert get_args(annotation) == RESAMPLING
