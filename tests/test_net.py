"""The network switch and the one download path: offline means no connection at all, and a
cached model file is re-hashed every time it is used."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepfake_lab import net
from deepfake_lab.errors import UserError

runner = CliRunner()
SPEC = net.ModelFile("test model", "model.bin", "https://example.org/model.bin", "0" * 64, 1 << 20)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEEPFAKE_LAB_CACHE", str(tmp_path / "cache"))
    # Restored after the test whatever the code under test sets (the CLI's --offline).
    monkeypatch.delenv(net.OFFLINE_ENV, raising=False)


@pytest.fixture
def no_network(monkeypatch) -> None:
    """Fail the test if anything tries to open a URL."""

    def urlopen(*args, **kwargs):
        pytest.fail(f"a network connection was attempted: {args[:1]}")

    monkeypatch.setattr("urllib.request.urlopen", urlopen)


def _serve(monkeypatch, body: bytes, fetched: list[str]) -> None:
    def urlopen(url, *args, **kwargs):
        fetched.append(url)
        return io.BytesIO(body)

    monkeypatch.setattr("urllib.request.urlopen", urlopen)


def test_the_switch(monkeypatch):
    assert not net.offline()
    for value, on in (("1", True), ("yes", True), ("TRUE", True), ("0", False), ("", False)):
        monkeypatch.setenv(net.OFFLINE_ENV, value)
        assert net.offline() is on
    net.set_offline(True)
    assert net.offline()
    net.set_offline(False)
    assert not net.offline()


@pytest.mark.usefixtures("no_network")
def test_offline_a_missing_file_is_one_line_and_nothing_is_opened(monkeypatch):
    monkeypatch.setenv(net.OFFLINE_ENV, "1")
    with pytest.raises(UserError) as info:
        net.model_file(SPEC, alternatives=", or pass --model PATH")
    message = str(info.value)
    assert "\n" not in message and message.startswith("test model not found (offline")
    for part in (SPEC.url, SPEC.sha256, str(SPEC.cached), "--model PATH"):
        assert part in message
    with pytest.raises(UserError, match="offline"):  # the low-level function refuses too
        net.download_checked(SPEC.url, SPEC.cached, SPEC.sha256, SPEC.max_bytes)
    assert not SPEC.cached.parent.exists()


def test_a_cached_file_is_rehashed_on_every_use(monkeypatch):
    import hashlib

    data = b"model bytes"
    spec = net.ModelFile("test model", "m.bin", SPEC.url, hashlib.sha256(data).hexdigest(), 99)
    fetched: list[str] = []
    _serve(monkeypatch, data, fetched)
    path = net.model_file(spec)
    assert path.read_bytes() == data and fetched == [spec.url]
    assert net.model_file(spec) == path and len(fetched) == 1  # cached: no second fetch
    path.write_bytes(b"model bytez")  # a bad sector, or someone swapping the file
    with pytest.raises(UserError, match=r"cached test model .*m\.bin has changed .*delete it"):
        net.model_file(spec)
    assert len(fetched) == 1  # refused, not silently replaced


@pytest.mark.usefixtures("no_network")
def test_every_model_download_obeys_the_switch(monkeypatch, tmp_path):
    from deepfake_lab.faces.detectors import yunet
    from deepfake_lab.metrics.features import inception
    from deepfake_lab.models.detectors import mesonet_common

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr("torch.hub._hub_dir", None)
    monkeypatch.setenv(net.OFFLINE_ENV, "1")
    for resolve, name in (
        (yunet.resolve_model, yunet.MODEL_NAME),
        (lambda: mesonet_common.resolve_weights("meso4", "DF"), "Meso4_DF.h5"),
        (inception.resolve_weights, inception.WEIGHTS_NAME),
    ):
        with pytest.raises(UserError, match=r"not found \(offline: --offline or ") as info:
            resolve()
        assert name in str(info.value)


def test_a_changed_cached_yunet_model_is_refused(tmp_path):
    from deepfake_lab.faces.detectors import yunet

    yunet.MODEL.cached.parent.mkdir(parents=True)
    yunet.MODEL.cached.write_bytes(b"not the model")
    with pytest.raises(UserError, match="cached YuNet face model .* has changed"):
        yunet.resolve_model()


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("how", ["flag", "env"])
def test_cli_offline_option_and_variable(tmp_path, monkeypatch, how):
    from PIL import Image

    from deepfake_lab.cli.app import app

    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (32, 32)).save(src / "a.png")
    args = ["data", "prepare", str(src), str(tmp_path / "out")]
    if how == "flag":
        res = runner.invoke(app, ["--offline", *args])
    else:
        res = runner.invoke(app, args, env={net.OFFLINE_ENV: "1"})
    assert res.exit_code == 2
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: YuNet face model not found (offline")
    assert "face_detection_yunet_2023mar.onnx" in line and "--face-model" in line


def test_help_lists_offline():
    from deepfake_lab.cli.app import app

    res = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert "--offline" in res.stdout and net.OFFLINE_ENV in res.stdout
