"""Detector export: safetensors + config round trip, tampering, refusals, ONNX equality."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from typer.testing import CliRunner

from deepfake_lab.cli.app import app
from deepfake_lab.data.dataset import load_rgb
from deepfake_lab.errors import UserError
from deepfake_lab.export import export_detector, source_kind
from deepfake_lab.models.detectors import DETECTORS, build_detector
from deepfake_lab.models.detectors.base import Detector
from deepfake_lab.models.detectors.loading import load_detector
from deepfake_lab.models.export_format import DETECTOR_FORMAT
from deepfake_lab.onnx_export import TOLERANCE, export_onnx
from detector_toys import make_toy_sets, train_toy

runner = CliRunner()
HAS_EXPORTER = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript"))
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
needs_exporter = pytest.mark.skipif(
    not HAS_EXPORTER, reason="onnx/onnxscript not installed (pip install 'deepfake-lab[onnx]')"
)
needs_ort = pytest.mark.skipif(
    not HAS_ORT, reason="onnxruntime not installed: ONNX equality check cannot run"
)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    root = make_toy_sets(tmp_path_factory.mktemp("toy"))
    return root, train_toy(root)


def _toy_batch(root) -> Tensor:
    files = sorted((root / "fake").glob("*.png"))[:4] + sorted((root / "real").glob("*.png"))[:4]
    imgs = np.stack([load_rgb(f, 16) for f in files])
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def test_export_round_trip_gives_the_same_detector(toy_run, tmp_path):
    root, run = toy_run
    out = tmp_path / "exp"
    res = runner.invoke(app, ["export", str(run), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "npr detector" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    meta = json.loads((out / "config.json").read_text())
    assert meta["format"] == DETECTOR_FORMAT and meta["name"] == "npr"
    assert meta["kwargs"] == {"size": 16, "width": 8} and meta["size"] == 16
    assert {"temperature", "threshold", "logit_threshold"} <= set(meta["calibration"])
    assert "reencode" in meta and meta["onnx"] is None
    assert meta["weights_bytes"] == (out / "model.safetensors").stat().st_size
    assert source_kind(out) == "detector" and source_kind(run) == "detector"

    a, b = load_detector(run), load_detector(out)
    x = _toy_batch(root)
    assert torch.equal(a.logits(x), b.logits(x))
    assert (a.temperature, a.logit_threshold, a.calibrated) == (
        b.temperature,
        b.logit_threshold,
        b.calibrated,
    )
    assert a.identity["weights_sha256"] == b.identity["weights_sha256"] == meta["weights_sha256"]
    assert not any(p.requires_grad for p in b.model.parameters()) and not b.model.training

    # The export re-exports (e.g. to add ONNX later) to identical weights.
    again = export_detector(out, tmp_path / "exp2")
    assert (again.folder / "model.safetensors").read_bytes() == (
        out / "model.safetensors"
    ).read_bytes()


def test_tampered_export_and_non_empty_out_are_one_line_errors(toy_run, tmp_path):
    root, run = toy_run
    out = tmp_path / "exp"
    export_detector(run, out)
    before = (out / "model.safetensors").read_bytes()

    res = runner.invoke(app, ["export", str(run), "--out", str(out)])
    assert res.exit_code == 2 and "not empty" in res.output
    assert (out / "model.safetensors").read_bytes() == before

    blob = bytearray(before)
    blob[-3] ^= 0xFF  # one weight byte
    (out / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(UserError, match="does not match the fingerprint"):
        load_detector(out)
    res = runner.invoke(app, ["detect", str(out), str(root / "real" / "000.png")])
    assert res.exit_code == 2 and "does not match the fingerprint" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) <= 3

    (out / "model.safetensors").write_bytes(before)
    meta = json.loads((out / "config.json").read_text())
    meta["calibration"]["temperature"] = -1
    (out / "config.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="invalid calibration"):
        load_detector(out)
    meta["format"] = "deepfake-lab/generator"
    (out / "config.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="not a deepfake-lab detector export"):
        load_detector(out)


@needs_exporter
def test_onnx_export_via_cli_matches_pytorch(toy_run, tmp_path):
    root, run = toy_run
    out = tmp_path / "exp"
    res = runner.invoke(app, ["export", str(run), "--out", str(out), "--onnx"])
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "config.json").read_text())
    assert (out / "model.onnx").is_file() and meta["onnx"]["file"] == "model.onnx"
    if not HAS_ORT:
        assert "SKIPPED" in res.output and meta["onnx"]["checked"] is False
        pytest.skip("onnxruntime not installed: the equality check was skipped (as reported)")
    import onnxruntime as ort

    assert meta["onnx"]["checked"] and "max |onnx - torch|" in res.output
    assert meta["onnx"]["max_abs_diff"] <= TOLERANCE * meta["onnx"]["logit_scale"]
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    x = _toy_batch(root)[:3]  # a batch size the export never saw
    got = session.run(["logits"], {"images": x.numpy()})[0]
    ref = load_detector(run).logits(x).numpy()
    assert got.shape == (3,) and np.abs(got - ref).max() <= TOLERANCE * max(1, np.abs(ref).max())


def _randomised(name: str, **kwargs) -> Detector:
    """A detector as initialised, with random heads and BatchNorm statistics, so that its
    logits are neither constant (zero-initialised heads) nor tiny."""
    torch.manual_seed(0)
    model = build_detector(name, **kwargs)
    with torch.no_grad():
        for p in model.head_parameters():
            p.normal_(0, 1)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


REGISTRY_CASES = {
    "resnet": {"size": 32, "width": 8},
    "npr": {"size": 32, "width": 8},
    "spectrum": {"size": 32, "bins": 8},
    "phase": {"size": 32},
    "gan-d": {"arch": "fastgan", "size": 64, "channels": 8, "max_channels": 32},
    "resnet-cifar": {"depth": 20, "size": 32},
    "meso4": {"size": 64},  # the network resizes to 256 inside: the resize is exported too
    "mesoinception": {"size": 256},
    "fusion": {
        "size": 32,
        "members": [
            {"name": "npr", "kwargs": {"size": 16, "width": 8}},
            {"name": "resnet", "kwargs": {"size": 32, "width": 8}},
        ],
    },
}


def test_every_registry_entry_has_an_onnx_case():
    assert set(REGISTRY_CASES) == set(DETECTORS.names())


@needs_exporter
@needs_ort
@pytest.mark.parametrize(
    "name,kwargs",
    [*REGISTRY_CASES.items(), ("gan-d", {"arch": "dcgan", "size": 64, "channels": 8})],
    ids=[*REGISTRY_CASES, "gan-d-dcgan"],
)
def test_every_detector_exports_to_onnx_and_matches(name, kwargs, tmp_path):
    model = _randomised(name, **kwargs)
    check = export_onnx(model, tmp_path / "m.onnx")
    assert check.checked and check.n_images == 5
    assert check.max_abs_diff <= TOLERANCE * check.logit_scale, check.summary()


class _NoOnnxOp(Detector):
    """Uses an op ONNX has no function for (the Bessel function I0)."""

    def __init__(self) -> None:
        super().__init__(8)
        self.head = nn.Linear(3, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(torch.special.i0(x).mean(dim=(2, 3)))[:, 0]

    def head_modules(self) -> list[nn.Module]:
        return [self.head]


@needs_exporter
def test_unexportable_detector_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match="cannot be exported to ONNX.*bessel_i0") as info:
        export_onnx(_NoOnnxOp().eval(), tmp_path / "m.onnx")
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


@needs_exporter
def test_missing_onnxruntime_skips_the_check_and_says_so(tmp_path, monkeypatch):
    import deepfake_lab.onnx_export as ox

    monkeypatch.setattr(ox, "onnxruntime_available", lambda: False)
    check = export_onnx(_randomised("npr", size=16, width=4), tmp_path / "m.onnx")
    assert not check.checked and "onnxruntime is not installed" in check.skipped
    assert "SKIPPED" in check.summary() and (tmp_path / "m.onnx").is_file()


def test_missing_exporter_packages_fail_before_any_work(toy_run, tmp_path, monkeypatch):
    import deepfake_lab.onnx_export as ox

    real = importlib.util.find_spec
    monkeypatch.setattr(
        ox.importlib.util, "find_spec", lambda n, *a: None if n == "onnxscript" else real(n, *a)
    )
    with pytest.raises(UserError, match=r"onnxscript.*pip install 'deepfake-lab\[onnx\]'"):
        export_detector(toy_run[1], tmp_path / "exp", onnx=True)
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("bad", [10**6, 0, -3, 2.5, "16", True])
def test_export_with_an_impossible_native_floor_is_refused(toy_run, tmp_path, bad):
    _root, run = toy_run
    out = export_detector(run, tmp_path / "exp").folder
    meta = json.loads((out / "config.json").read_text())
    assert meta["native_floor"] is None  # trained without the floor
    meta["native_floor"] = bad
    (out / "config.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="native_floor must be a whole number of px in 1-16"):
        load_detector(out)
