"""inception-v3-fid: parity with torch-fidelity, input handling, and the weights lifecycle.

The real weights are not on these machines, so parity is shown with random weights loaded
into both implementations. torch-fidelity is a test-only dependency
(``pip install --no-deps torch-fidelity==0.4.0``); its tests skip without it.
"""

from __future__ import annotations

import io
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepfake_lab.errors import UserError
from deepfake_lab.metrics.features import FEATURE_EXTRACTORS
from deepfake_lab.metrics.features import inception as inc
from deepfake_lab.metrics.features.inception_net import random_fid_state_dict
from deepfake_lab.metrics.frechet import feature_stats, frechet_distance
from features import torch_fidelity_inception  # bench/, on pythonpath

try:
    FidelityInception = torch_fidelity_inception()
    NO_FIDELITY = ""
except ImportError as exc:
    FidelityInception, NO_FIDELITY = None, str(exc)
needs_fidelity = pytest.mark.skipif(
    FidelityInception is None, reason=f"parity reference unavailable: {NO_FIDELITY}"
)


def _images(n: int, size: int, seed: int, grid: int, shift: float) -> torch.Tensor:
    """uint8 (n, 3, size, size): smooth random colour fields plus noise (not pure noise,
    so that features differ between images)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, grid, grid, generator=g) * 255
    img = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    img = img + torch.randn(n, 3, size, size, generator=g) * 8 + shift
    return img.clamp(0, 255).round().to(torch.uint8)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest per-row error relative to the reference row's norm."""
    return ((a.double() - b.double()).norm(dim=1) / b.double().norm(dim=1)).max().item()


def _fid(a: np.ndarray, b: np.ndarray, basis: np.ndarray) -> float:
    """FID of two feature sets in the coordinates of an orthonormal ``basis`` (d, k).

    FID is invariant under rotations and only sees the span of the centred features and
    the mean difference, so with a basis of that span this is the d-dimensional FID
    exactly, while ``sqrtm`` works on k x k instead of 2048 x 2048 (40 s per call on a
    busy 2-core CPU). ``test_projected_fid_equals_full_fid`` checks the identity.
    """
    return frechet_distance(*feature_stats(a @ basis), *feature_stats(b @ basis))


def _span_basis(*sets: np.ndarray) -> np.ndarray:
    cols = [s - s.mean(0) for s in sets] + [sets[0].mean(0, keepdims=True)]
    cols += [s.mean(0, keepdims=True) - sets[0].mean(0, keepdims=True) for s in sets[1:]]
    u, sv, _ = np.linalg.svd(np.concatenate(cols).T, full_matrices=False)
    return u[:, sv > sv.max() * 1e-12]


def test_projected_fid_equals_full_fid():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(10, 300)) @ rng.normal(size=(300, 300)) * 0.1 + 1
    b = rng.normal(size=(12, 300)) + 0.5
    full = frechet_distance(*feature_stats(a), *feature_stats(b))
    # Equal up to round-off: the full sqrtm takes square roots of the ~1e-13 noise in the
    # zero eigenvalues, which moves it by ~1e-7 relative; the projected one has none.
    assert _fid(a, b, _span_basis(a, b)) == pytest.approx(full, rel=1e-6)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(random_fid_state_dict(0), path)
    return path


@pytest.fixture(scope="module")
def parity(random_weights, tmp_path_factory):
    """Features and logits of the same images from torch-fidelity and from ours."""
    if FidelityInception is None:
        pytest.skip(f"parity reference unavailable: {NO_FIDELITY}")
    outs = ["2048", "logits_unbiased", "logits"]
    theirs = FidelityInception(
        "inception-v3-compat", outs, feature_extractor_weights_path=str(random_weights)
    )
    folder = tmp_path_factory.mktemp("layouts")
    # torch-fidelity's layout: its own module's state dict (with num_batches_tracked).
    fidelity_file = folder / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(theirs.state_dict(), fidelity_file)
    # pytorch-fid's layout: torchvision Inception3 names, as in the released file, which
    # predates BatchNorm's num_batches_tracked.
    state = {k: v for k, v in random_fid_state_dict(0).items() if "num_batches" not in k}
    pytorch_fid_file = folder / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, pytorch_fid_file)

    sets = {"a": _images(6, 64, seed=1, grid=4, shift=0), "b": _images(6, 128, 2, 8, 30)}
    ours = inc.InceptionV3FID(fidelity_file, allow_unverified=True)  # default (fused) path
    res: dict[str, dict[str, torch.Tensor]] = {"theirs": {}, "ours": {}}
    for key, pixels in sets.items():
        with torch.inference_mode():
            f, lu, lb = theirs(pixels)
        res["theirs"].update({f"f{key}": f, f"lu{key}": lu, f"lb{key}": lb[:2]})
        f, lu = ours.features_and_logits(pixels.float() / 127.5 - 1)  # same uint8 images
        lb = ours.logits(pixels[:2], bias=True)  # uint8 input taken as it is
        res["ours"].update({f"f{key}": f, f"lu{key}": lu, f"lb{key}": lb})
    few = sets["a"][:2]
    plain = inc.InceptionV3FID(fidelity_file, allow_unverified=True, fuse=False)
    other = inc.InceptionV3FID(pytorch_fid_file, allow_unverified=True)
    res["extra"] = {"plain": plain.features(few), "pytorch_fid": other.features(few)}
    res["extra"]["fused"] = res["ours"]["fa"][:2]
    return res


@needs_fidelity
def test_random_weights_give_non_degenerate_features(parity):
    f = torch.cat([parity["theirs"]["fa"], parity["theirs"]["fb"]])
    assert torch.isfinite(f).all()
    assert (f > 0).float().mean() > 0.5  # most ReLU outputs alive
    # features differ between images, not one constant vector
    assert f.std(0).median() > 1e-2 * f.abs().mean()
    lu = parity["theirs"]["lua"]
    assert lu.std(0).median() > 1e-3 * lu.abs().mean()


@needs_fidelity
@pytest.mark.parametrize("key", ["fa", "fb", "lua", "lub", "lba", "lbb"])
def test_features_and_logits_match_torch_fidelity(parity, key):
    # a: 64 px, b: 128 px images; f: pool3, lu: logits without bias, lb: with bias
    assert _rel(parity["ours"][key], parity["theirs"][key]) <= 1e-5


@needs_fidelity
def test_fid_matches_torch_fidelity(parity):
    t = {k: v.double().numpy() for k, v in parity["theirs"].items()}
    o = {k: v.double().numpy() for k, v in parity["ours"].items()}
    basis = _span_basis(t["fa"], t["fb"], o["fa"], o["fb"])
    ref = _fid(t["fa"], t["fb"], basis)
    assert ref > 1.0
    assert abs(_fid(o["fa"], o["fb"], basis) - ref) <= 1e-4 * ref


@needs_fidelity
def test_both_key_layouts_and_unfused_path(parity):
    e = parity["extra"]
    assert torch.equal(e["pytorch_fid"], e["fused"])  # same values from either file layout
    assert _rel(e["plain"], e["fused"]) <= 1e-5


@needs_fidelity
def test_resize_is_bit_identical_to_torch_fidelity():
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x,
    )

    g = torch.Generator().manual_seed(0)
    for h, w in [(64, 64), (128, 96), (300, 300), (299, 299)]:
        x = torch.rand(2, 3, h, w, generator=g) * 255
        ref = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
        assert torch.equal(inc.resize_like_tf1(x), ref)


def test_quantisation_recovers_saved_pixels():
    p = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16)
    assert torch.equal(inc.quantize_pixels(p.float() / 127.5 - 1), p.float())
    assert torch.equal(inc.quantize_pixels(p), p.float())
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0, float("nan")]).view(1, 1, 1, 6).expand(1, 3, 1, 6)
    assert inc.quantize_pixels(x)[0, 0, 0].tolist() == [0, 0, 128, 255, 255, 128]


def test_registry_entry():
    cls = FEATURE_EXTRACTORS.get("inception-v3-fid")
    assert (cls.label, cls.dim, cls.is_classifier, cls.num_classes) == ("FID", 2048, True, 1008)


def test_other_weights_refused_unless_allowed(random_weights):
    with pytest.raises(UserError) as err:
        FEATURE_EXTRACTORS.build("inception-v3-fid", weights=random_weights)
    msg = str(err.value)
    assert "not the FID Inception weights" in msg and inc.WEIGHTS_SHA256 in msg and "\n" not in msg
    fx = inc.InceptionV3FID(random_weights, allow_unverified=True)
    digest = inc.sha256_file(random_weights)
    assert fx.label == f"FD-Incv3-{digest[:8]}"  # never "FID"
    assert fx.cache_key() == {
        "name": "inception-v3-fid",
        "weights_sha256": digest,
        "resize": "tf1-bilinear-299",
        "input": "uint8 trunc(x*127.5+128), (p-128)/128",
    }


@pytest.fixture
def empty_caches(tmp_path, monkeypatch) -> Path:
    """Point every weights location into tmp_path; return our cache folder."""
    monkeypatch.setenv("DEEPFAKE_LAB_CACHE", str(tmp_path / "dl"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "dl" / "models"


def test_missing_weights_offline_is_one_line(empty_caches, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(UserError) as err:
        FEATURE_EXTRACTORS.build("inception-v3-fid")
    msg = str(err.value)
    assert "\n" not in msg and "download failed" in msg
    for part in (inc.WEIGHTS_NAME, inc.WEIGHTS_SHA256, inc.WEIGHTS_URL, str(empty_caches)):
        assert part in msg
    with pytest.raises(UserError, match="downloads are off"):
        inc.InceptionV3FID(download=False)


def test_wrong_download_is_refused_and_leaves_no_file(empty_caches, monkeypatch):
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: io.BytesIO(b"<html>"))
    with pytest.raises(UserError, match="sha256 of the download is"):
        inc.InceptionV3FID()
    assert not empty_caches.exists() or not any(empty_caches.iterdir())


def test_checked_download_then_cache(random_weights, empty_caches, monkeypatch):
    data = random_weights.read_bytes()
    monkeypatch.setattr(inc, "WEIGHTS_SHA256", inc.sha256_file(random_weights))
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: io.BytesIO(data))
    fx = inc.InceptionV3FID()
    assert fx.weights_path == empty_caches / inc.WEIGHTS_NAME
    assert fx.weights_path.read_bytes() == data and fx.label == "FID"
    # torch hub's folder comes first, under either release name; no download then
    hub = Path(torch.hub.get_dir()) / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    hub.parent.mkdir(parents=True)
    hub.write_bytes(data)
    monkeypatch.setattr("urllib.request.urlopen", None)
    assert inc.InceptionV3FID().weights_path == hub
