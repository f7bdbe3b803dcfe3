"""The invisible watermark: payload, embedding, reading through common edits, false
positives, and what the mark costs in pixels."""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
import pytest
from PIL import Image, ImageEnhance
from scipy.special import comb

from conftest import shared_path
from deepfake_lab.data.procedural import render_faces
from deepfake_lab.provenance import watermark as wm

SHA = "e36e4abdd9ddfb91760ed55be5a3a2630cc8624bc98accdee210bd5d9d051be6"


@pytest.fixture(scope="module")
def faces128() -> np.ndarray:
    return render_faces(3, 128, seed=5)


def _jpeg(a: np.ndarray, q: int, fmt: str = "JPEG") -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, fmt, quality=q)
    return np.asarray(Image.open(buf).convert("RGB"))


def test_payload_round_trip_and_rejects_foreign_bytes():
    p = wm.make_payload(SHA)
    assert p.fingerprint == SHA[:8] and not p.keyed and p.code == 0
    assert wm.Payload.from_bytes(p.to_bytes()) == p
    bad_magic = bytes([0x00]) + p.to_bytes()[1:]
    assert wm.Payload.from_bytes(bad_magic) is None
    future = p.to_bytes()[:1] + bytes([0x20]) + p.to_bytes()[2:]  # version 2
    assert wm.Payload.from_bytes(future) is None


def test_keyed_code_proves_the_owner():
    p = wm.make_payload(SHA, secret=b"owner secret")
    assert p.keyed and wm.code_matches(p, b"owner secret")
    assert not wm.code_matches(p, b"someone else")
    assert not wm.code_matches(wm.make_payload(SHA), b"owner secret")  # unkeyed never matches


@pytest.mark.parametrize("size", [32, 48, 64, 128, 256])
def test_marked_images_read_back_exactly_at_every_size(size):
    img = render_faces(1, size, seed=size)[0]
    p = wm.make_payload(SHA, secret=b"k")
    marked = wm.embed(img, p)
    r = wm.extract(marked, search=False)
    assert r.found and r.payload == p and r.aligned == "direct" and r.bit_errors == 0
    psnr = cv2.PSNR(marked, img)
    assert psnr > 34, psnr  # invisible: tens of dB above the image


def test_the_mark_changes_luma_only(faces128):
    img = faces128[0]
    marked = wm.embed(img, wm.make_payload(SHA)).astype(int)
    diff = marked - img.astype(int)
    # Equal steps on R, G and B: colour differences move only where clipping or rounding
    # touched one channel.
    assert np.abs(diff[..., 0] - diff[..., 1]).mean() < 0.3
    assert np.abs(diff).max() > 0


@pytest.mark.parametrize(
    "edit",
    ["jpeg75", "jpeg50", "webp", "resize0.5", "resize2", "darker", "crop10", "crop10-corner"],
)
def test_the_mark_survives_common_edits(faces128, edit):
    p = wm.make_payload(SHA)
    for img in faces128:
        m = wm.embed(img, p)
        edited = {
            "jpeg75": lambda a: _jpeg(a, 75),
            "jpeg50": lambda a: _jpeg(a, 50),
            "webp": lambda a: _jpeg(a, 80, "WEBP"),
            "resize0.5": lambda a: cv2.resize(a, (64, 64), interpolation=cv2.INTER_AREA),
            "resize2": lambda a: cv2.resize(a, (256, 256), interpolation=cv2.INTER_CUBIC),
            "darker": lambda a: np.asarray(
                ImageEnhance.Brightness(Image.fromarray(a)).enhance(0.8)
            ),
            "crop10": lambda a: a[7:122, 4:119],  # 115 of 128 px, off-centre
            "crop10-corner": lambda a: a[13:, 13:],  # the largest offset a 10 % crop has
        }[edit](m)
        r = wm.extract(edited)
        assert r.found and r.payload == p, (edit, r)
        assert r.bit_errors <= r.budget
        if edit.startswith("crop"):
            assert r.aligned == "search"


def test_unmarked_images_are_not_read_as_marked(faces128):
    for img in faces128:
        r = wm.extract(img)  # with the crop search: the most decodes an image can get
        assert not r.found and r.payload is None and r.decodes == 1 + wm.SEARCH_DECODES


def test_unmarked_real_photos_are_not_read_as_marked():
    folder = shared_path("data", "ffhq-128")
    for f in sorted(folder.glob("*.png"))[:3]:
        assert not wm.extract(np.asarray(Image.open(f).convert("RGB"))).found


def test_false_positive_bound_is_the_code_arithmetic():
    ball = sum(comb(120, i, exact=True) for i in range(9))
    assert wm.false_positive_bound(1) == pytest.approx(ball / 2.0**56 / 2**12)
    assert wm.false_positive_bound(5) == pytest.approx(5 * wm.false_positive_bound(1))
    assert wm.false_positive_bound() < 1e-7  # the design target: none in millions of photos
    assert math.isclose(wm.N_BITS, 64 + wm.BCH_T * wm.BCH_M)


def test_bch_corrects_up_to_its_budget_and_no_more(faces128, monkeypatch):
    """Flip k of the 120 coded bits on the way in: up to t=8 are corrected and counted."""
    p = wm.make_payload(SHA)
    real_bits = wm._bits

    for k, ok in ((3, True), (8, True), (12, False)):
        flips = np.random.default_rng(k).choice(wm.N_BITS, k, replace=False)

        def noisy(data, flips=flips):
            b = real_bits(data).copy()
            b[flips] = 1 - b[flips]
            return b

        monkeypatch.setattr(wm, "_bits", noisy)
        m = wm.embed(faces128[0], p)
        monkeypatch.setattr(wm, "_bits", real_bits)
        r = wm.extract(m, search=False)
        assert r.found is ok, k
        if ok:
            assert r.bit_errors == k and r.payload == p


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        wm.embed(np.zeros((64, 64, 3), np.float32), wm.make_payload(SHA))
    with pytest.raises(ValueError, match="too small"):
        wm.embed(np.zeros((31, 64, 3), np.uint8), wm.make_payload(SHA))
    assert not wm.extract(np.zeros((4, 4, 3), np.uint8)).found


def test_flat_images_are_marked_too():
    """An untrained generator's near-constant grey still carries a readable mark."""
    flat = np.full((32, 32, 3), 127, np.uint8)
    flat[::2, ::2] = 128
    p = wm.make_payload(SHA)
    r = wm.extract(wm.embed(flat, p), search=False)
    assert r.found and r.payload == p
