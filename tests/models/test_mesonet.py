"""MesoNet (``meso4``, ``mesoinception``): the released Keras weights, read with h5py, give
the authors' numbers; the sign, the weights' resolution (cache, download, offline), loading
as a ready detector, export and initialisation."""

from __future__ import annotations

import io
import json
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_path
from deepfake_lab.errors import UserError
from deepfake_lab.models.detectors import build_detector
from deepfake_lab.models.detectors import mesonet_common as meso
from deepfake_lab.models.detectors.mesonet_common import PUBLISHED

# Reference outputs of the authors' networks, computed once with real Keras (not run here):
# tensorflow-cpu 2.21.0 (Keras 3.15.1) from PyPI, Python 3.11, in a scratch venv outside the
# repository. Meso4 and MesoInception4 were rebuilt verbatim from `init_model` in
# classifiers.py of DariusAf/MesoNet at commit 2144d56 (only `name=` added to each Conv2D,
# BatchNormalization and Dense, giving the names the .h5 file stores, so that
# `model.load_weights(path, by_name=True)` pairs layers by name; a plain `load_weights` in
# Keras's graph order gave identical outputs). The images were read as the authors'
# example.py reads them: `ImageDataGenerator(rescale=1./255).flow_from_directory(
# "test_images", target_size=(256, 256), batch_size=4, class_mode="binary", shuffle=False)`
# (keras.src.legacy.preprocessing.image; default interpolation "nearest"), classes
# {"df": 0, "real": 1}. P_REAL is `model.predict(X)`; PRE_SIGMOID is the last Dense layer's
# input (a sub-model up to it) times its kernel plus bias, computed in NumPy.
FILES = ["df/df00204.jpg", "df/df01254.jpg", "real/real00240.jpg", "real/real00772.jpg"]
P_REAL = {
    "Meso4_DF": [0.04141176491975784, 0.048693738877773285, 0.9897475838661194, 0.9977015852928162],
    "Meso4_F2F": [0.8312373757362366, 0.6410998106002808, 0.8810235261917114, 0.9524387717247009],
    "MesoInception_DF": [0.026218241080641747, 0.0009519655141048133, 1.0, 1.0],
    "MesoInception_F2F": [0.9987431764602661, 0.9999974370002747, 1.0, 0.9908301830291748],
}
PRE_SIGMOID = {
    "Meso4_DF": [-3.1418967247009277, -2.972285509109497, 4.569934368133545, 6.07322359085083],
    "Meso4_F2F": [1.5944221019744873, 0.5801408290863037, 2.0021586418151855, 2.9970080852508545],
    "MesoInception_DF": [
        -3.614731550216675,
        -6.956029415130615,
        21.596174240112305,
        45.603126525878906,
    ],
    "MesoInception_F2F": [
        6.67789363861084,
        12.865592956542969,
        17.572891235351562,
        4.682623386383057,
    ],
}
ARCH = {"Meso4": "meso4", "MesoInception": "mesoinception"}
CASES = [(a, v) for a in ARCH for v in ("DF", "F2F")]


def _weights(arch: str, variant: str) -> Path:
    return shared_path("models", "mesonet", f"{arch}_{variant}.h5")


def _original(name: str) -> np.ndarray:
    """A sample image as decoded, ``(H, W, 3)`` uint8."""
    return np.asarray(
        Image.open(shared_path("models", "mesonet", "test_images", name)).convert("RGB")
    )


def _to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(1, 3, H, W)`` in [-1, 1], as our pipelines feed detectors."""
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1


def _authors_batch() -> torch.Tensor:
    """The four images as the authors' Keras loader makes them (PIL nearest to 256)."""
    images = []
    for name in FILES:
        img = Image.open(shared_path("models", "mesonet", "test_images", name)).convert("RGB")
        images.append(_to_tensor(np.asarray(img.resize((256, 256), Image.NEAREST))))
    return torch.cat(images)


def _published(name: str, variant: str = "DF") -> torch.nn.Module:
    arch = next(a for a, n in ARCH.items() if n == name)
    return build_detector(name, weights=str(_weights(arch, variant))).eval()


@pytest.mark.parametrize(("arch", "variant"), CASES)
def test_released_weights_give_the_keras_outputs(arch: str, variant: str) -> None:
    det = build_detector(ARCH[arch], weights=str(_weights(arch, variant))).eval()
    assert det.weights_info["variant"] == variant
    with torch.no_grad():
        logits = det(_authors_batch())
    key = f"{arch}_{variant}"
    # Our logit is the negated input of the authors' P(real) sigmoid.
    torch.testing.assert_close(logits, -torch.tensor(PRE_SIGMOID[key]), rtol=1e-4, atol=1e-4)
    p_fake = torch.sigmoid(logits)
    torch.testing.assert_close(p_fake, 1 - torch.tensor(P_REAL[key]), rtol=0, atol=1e-4)


@pytest.mark.parametrize("arch", list(ARCH))
def test_resize_in_forward_matches_the_keras_loader(arch: str) -> None:
    """Originals of 342, 264, 256 and 208 px, resized inside ``forward``, score as the
    authors' 256 px inputs do (``nearest-exact`` picks PIL's NEAREST pixels)."""
    det = build_detector(ARCH[arch], weights=str(_weights(arch, "DF"))).eval()
    with torch.no_grad():
        logits = torch.cat([det(_to_tensor(_original(name))) for name in FILES])
    expected = -torch.tensor(PRE_SIGMOID[f"{arch}_DF"])
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(ARCH.values()))
def test_positive_logit_means_fake(name: str) -> None:
    """Deepfake weights on the authors' samples: both df images above 0.5, both reals below."""
    with torch.no_grad():
        p_fake = torch.sigmoid(_published(name)(_authors_batch()))
    assert p_fake[:2].min() > 0.9 and p_fake[2:].max() < 0.05, p_fake


def test_keras_flatten_order_is_permuted() -> None:
    """Loading the dense layer in Keras's (H, W, C) flatten order, unpermuted, gives other
    numbers: the agreement above depends on the permutation."""
    path = _weights("Meso4", "DF")
    det = build_detector("meso4", weights=str(path)).eval()
    layers = meso.read_keras_h5(path, "test")
    meso.load_dense(det.head.fc1, meso.by_kind(layers, "dense", 2, "test")[0], "test")  # no hwc
    with torch.no_grad():
        wrong = det(_authors_batch())
    assert (wrong + torch.tensor(PRE_SIGMOID["Meso4_DF"])).abs().max() > 1.0


def test_weights_of_another_architecture_or_no_keras_file_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="expected 4 conv2d layers"):
        build_detector("meso4", weights=str(_weights("MesoInception", "DF")))
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="not an HDF5 file"):
        build_detector("mesoinception", weights=str(junk))
    with pytest.raises(UserError, match="is a folder"):
        build_detector("meso4", weights=str(tmp_path))


def test_init_from_and_rebuild_without_the_file() -> None:
    """``--init`` style: a fresh network takes every tensor of a published one (as from a
    checkpoint of a run started with ``weights=DF``); exports rebuild without the file."""
    published = _published("meso4")
    assert published.rebuild_kwargs()["weights"] is None
    fresh = build_detector("meso4", **published.rebuild_kwargs()).eval()
    x = _authors_batch()
    with torch.no_grad():
        assert not torch.allclose(fresh(x), published(x))
        report = fresh.init_from(published.state_dict(), strict=True)
        assert not (report.missing or report.mismatched or report.unused)
        assert torch.equal(fresh(x), published(x))


# -- finding the weights: cache, download, offline -------------------------------------------
class _Response(io.BytesIO):
    """What ``urllib.request.urlopen`` returns (a context manager over fixed bytes)."""


def _serve(monkeypatch, body: bytes | Exception, fetched: list[str]) -> None:
    def urlopen(url, *args, **kwargs):
        fetched.append(url)
        if isinstance(body, Exception):
            raise body
        return _Response(body)

    monkeypatch.setattr("urllib.request.urlopen", urlopen)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("DEEPFAKE_LAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


def test_missing_weights_offline_or_with_downloads_off(cache: Path, monkeypatch) -> None:
    fetched: list[str] = []
    _serve(monkeypatch, urllib.error.URLError("network is unreachable"), fetched)
    spec = PUBLISHED["meso4"]["DF"]
    with pytest.raises(UserError) as info:
        meso.resolve_weights("meso4", "DF", download=False)
    message = str(info.value)
    assert "\n" not in message and "downloads are off" in message
    assert spec.url in message and spec.sha256 in message and str(cache / spec.filename) in message
    assert fetched == []  # no download attempt

    with pytest.raises(UserError, match="not found.*DF, F2F") as info:
        build_detector("meso4", weights="/no/such/Meso4_DF.h5")
    assert fetched == []

    with pytest.raises(UserError) as info:
        build_detector("meso4", weights="df")  # variant names in any case
    message = str(info.value)
    assert "\n" not in message and "network is unreachable" in message and spec.url in message
    assert fetched == [spec.url]
    assert not cache.exists() or not any(cache.iterdir())


def test_download_is_checked_then_cached(cache: Path, monkeypatch) -> None:
    fetched: list[str] = []
    _serve(monkeypatch, b"<html>not the weights</html>", fetched)
    with pytest.raises(UserError, match="sha256 of the download is"):
        build_detector("mesoinception", weights="F2F")
    assert not any(cache.iterdir())

    data = _weights("MesoInception", "F2F").read_bytes()
    _serve(monkeypatch, data, fetched)
    det = build_detector("mesoinception", weights="F2F")
    spec = PUBLISHED["mesoinception"]["F2F"]
    assert fetched[-1] == spec.url == det.weights_info["url"]
    assert (cache / spec.filename).read_bytes() == data
    monkeypatch.setattr("urllib.request.urlopen", None)  # the cache needs no network
    again = build_detector("mesoinception", weights="F2F")
    assert again.weights_info["sha256"] == spec.sha256


# -- ready-made detectors: detect, export -----------------------------------------------------
@pytest.fixture
def cached(cache: Path) -> Path:
    """The released files linked into an empty cache (never copied)."""
    cache.mkdir(parents=True)
    for variants in PUBLISHED.values():
        for spec in variants.values():
            (cache / spec.filename).symlink_to(shared_path("models", "mesonet", spec.filename))
    return cache


def test_load_detector_by_name_and_detect(cached: Path, tmp_path: Path, monkeypatch) -> None:
    from deepfake_lab.detect import detect_images
    from deepfake_lab.export import export_model
    from deepfake_lab.models.detectors.loading import load_detector

    monkeypatch.chdir(tmp_path)  # no folder named like a model
    det = load_detector("meso4")  # the first released set: DF
    assert not det.calibrated and det.threshold == 0.5 and det.logit_threshold == 0.0
    assert det.model_id.startswith("meso4:DF:")
    published = det.identity["published"]
    assert published["sha256"] == PUBLISHED["meso4"]["DF"].sha256
    assert det.identity["source"] == str(cached / "Meso4_DF.h5")
    assert load_detector("mesoinception:F2F").model_id.startswith("mesoinception:F2F:")

    folder = shared_path("models", "mesonet", "test_images")
    records = detect_images("meso4:DF", [folder])
    labels = {Path(r["path"]).name: r["label"] for r in records}
    assert labels == {
        "df00204.jpg": "fake",
        "df01254.jpg": "fake",
        "real00240.jpg": "real",
        "real00772.jpg": "real",
    }

    result = export_model("meso4:DF", tmp_path / "export")
    assert result.kind == "detector" and result.name == "meso4"
    exported = load_detector(tmp_path / "export")
    x = _authors_batch()
    assert torch.equal(exported.logits(x), det.logits(x))
    assert exported.identity["weights_sha256"] == det.identity["weights_sha256"]

    with pytest.raises(UserError, match="released detector: meso4, meso4:F2F, mesoinception"):
        load_detector("resnet")  # trained from scratch only: no such path, and no weights
    with pytest.raises(UserError, match="weights 'XYZ' not found"):
        load_detector("meso4:XYZ")


def test_init_a_detector_from_released_weights(cached: Path) -> None:
    from deepfake_lab.training.detector import init_weights

    model = build_detector("meso4", size=64)
    report = init_weights(model, "meso4:DF")
    assert "loaded 32 tensors; 0 missing" in report
    published = build_detector("meso4", weights="DF")
    for k, t in published.state_dict().items():
        assert torch.equal(model.state_dict()[k], t), k


def test_a_fusion_of_released_detectors_works_at_their_size(cached: Path, tmp_path: Path) -> None:
    """Released weights leave ``size`` out of their kwargs; the fusion must still run at the
    members' 256 px, so that each member scores an image exactly as it does alone (at 128
    px they were bilinearly upscaled, and MesoInception called most real faces fake)."""
    from deepfake_lab.models.detectors.loading import load_detector
    from deepfake_lab.training.fusion import train_fusion
    from detector_toys import make_toy_sets

    held = make_toy_sets(tmp_path / "held", n=8)
    run = train_fusion(
        ["meso4:DF", "mesoinception:DF"], [held / "real"], [held / "fake"], out=tmp_path / "runs"
    )
    fused = load_detector(run)
    assert fused.size == 256
    x = _authors_batch()
    z = fused.model.analyse(x)["z"]
    for i, name in enumerate(("meso4:DF", "mesoinception:DF")):
        alone = load_detector(name)
        torch.testing.assert_close(z[:, i], alone.logits(x), rtol=1e-5, atol=1e-5)


def test_detect_without_a_model_answers_with_the_released_default(
    cached: Path, tmp_path: Path, monkeypatch
) -> None:
    from typer.testing import CliRunner

    from deepfake_lab.cli.app import app
    from deepfake_lab.detect import split_model_argument
    from deepfake_lab.models.detectors.loading import DEFAULT_DETECTOR

    monkeypatch.chdir(tmp_path)
    folder = shared_path("models", "mesonet", "test_images")
    assert split_model_argument([str(folder)]) == (DEFAULT_DETECTOR, [str(folder)], True)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["detect", str(folder), "--no-faces", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "no model named: meso4:DF answers" in res.output
    # The default's limits are named where its answers are printed: its card.
    assert "docs/model-cards.md" in res.output and "no evidence" in res.output
    records = json.loads(out.read_text())["results"]
    assert {r["model"].split(":")[1] for r in records} == {"DF"}
    labels = {Path(r["path"]).name: r["label"] for r in records}
    assert labels["df00204.jpg"] == "fake" and labels["real00772.jpg"] == "real"
