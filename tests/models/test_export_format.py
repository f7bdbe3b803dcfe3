"""The export format's reader: crafted or mismatched config.json files are refused with one
line, before anything is allocated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from deepfake_lab.errors import UserError
from deepfake_lab.hashing import weights_sha256
from deepfake_lab.models import GENERATORS
from deepfake_lab.models import export_format as ef
from deepfake_lab.models.detectors import DETECTORS
from deepfake_lab.models.detectors.loading import load_detector
from deepfake_lab.models.generators.loading import load_generator
from deepfake_lab.registry import Registry
from deepfake_lab.runs.checkpoint import save_checkpoint


def _export(out: Path, registry: Registry[Any], name: str, kwargs: dict[str, Any]) -> Path:
    torch.manual_seed(0)
    model = registry.build(name, **kwargs).eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if registry is DETECTORS:
        meta = {"format": ef.DETECTOR_FORMAT, "name": name, "size": kwargs["size"]}
    else:
        meta = {"format": ef.EXPORT_FORMAT, "arch": name}
    meta |= {"kwargs": kwargs, "weights_sha256": weights_sha256(state), "calibration": None}
    return ef.write_export(out, state, meta)


def _edit(folder: Path, **changes: Any) -> None:
    path = folder / ef.CONFIG_FILE
    meta = json.loads(path.read_text())
    for key, value in changes.items():
        if key.startswith("kwargs_"):
            meta["kwargs"][key.removeprefix("kwargs_")] = value
        else:
            meta[key] = value
    path.write_text(json.dumps(meta))


@pytest.fixture
def no_allocation(monkeypatch) -> list[str]:
    """Fail the test if a model is built anywhere but on the meta device, or the weights are
    read; returns the devices models were built on."""
    devices: list[str] = []
    for registry in (DETECTORS, GENERATORS):
        real = registry.build

        def spy(name: str, _real=real, **kwargs: Any) -> Any:
            device = torch.empty(0).device.type  # the default device inside the call
            devices.append(device)
            assert device == "meta", f"{name} built for real from a refused config"
            return _real(name, **kwargs)

        monkeypatch.setattr(registry, "build", spy)

    def no_read(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the weights were read from a refused config")

    monkeypatch.setattr(ef, "load_file", no_read)
    return devices


@pytest.fixture
def spectrum(tmp_path: Path) -> Path:
    return _export(tmp_path / "spectrum", DETECTORS, "spectrum", {"size": 16, "bins": 4})


@pytest.fixture
def npr(tmp_path: Path) -> Path:
    return _export(tmp_path / "npr", DETECTORS, "npr", {"size": 16, "width": 4})


@pytest.fixture
def gen(tmp_path: Path) -> Path:
    kwargs = {"size": 16, "z_dim": 8, "channels": 8, "max_channels": 16}
    return _export(tmp_path / "gen", GENERATORS, "dcgan", kwargs)


def test_good_exports_still_load(spectrum, npr, gen):
    assert load_detector(spectrum).size == 16
    assert load_detector(npr).model_id.startswith("npr:")
    assert load_generator(gen).model.z_dim == 8


def test_a_huge_size_is_refused_before_anything_is_built(spectrum, no_allocation):
    # The case: spectrum's constructor would ask for size**2 bin indices (360 GB).
    _edit(spectrum, kwargs_size=300000, size=300000)
    with pytest.raises(UserError, match=r"kwargs\.size = 300000 px is outside 1-4096") as info:
        load_detector(spectrum)
    assert "\n" not in str(info.value) and str(spectrum) in str(info.value)
    assert no_allocation == []


def test_arguments_that_do_not_fit_the_weights_are_refused_on_the_meta_device(npr, no_allocation):
    _edit(npr, kwargs_width=4096)  # 4096 channels: conv weights of GBs, not in the file
    with pytest.raises(UserError, match=r"weights do not fit a npr detector .* is \(4, 3, 3, 3\)"):
        load_detector(npr)
    assert no_allocation == ["meta"]


def test_a_generator_with_a_huge_latent_is_refused(gen, no_allocation):
    _edit(gen, kwargs_z_dim=300000)
    with pytest.raises(UserError, match=r"kwargs\.z_dim = 300000 is larger than 65536"):
        load_generator(gen)
    _edit(gen, kwargs_z_dim=9000)  # within bounds, but not what the weights hold
    with pytest.raises(UserError, match="weights do not fit a dcgan generator"):
        load_generator(gen)
    assert no_allocation == ["meta"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kwargs_z_dim": 10**9}, r"kwargs\.z_dim = 1000000000 is larger than 65536"),
        ({"kwargs_bins": float("nan")}, r"kwargs\.bins is NaN"),
        ({"kwargs_size": 16.5}, r"kwargs\.size = 16\.5 is not a whole number"),
        ({"kwargs_extra": list(range(1000))}, r"kwargs\.extra has 1000 items"),
        ({"kwargs_extra": "x" * 10000}, r"kwargs\.extra is a string of 10000 characters"),
        ({"kwargs_extra": [[[[[[[[[[1]]]]]]]]]]}, "nested more than 8 deep"),
        ({"kwargs": [16, 4]}, "expected a mapping"),
        ({"name": "nope"}, "unknown detector architecture 'nope'"),
        ({"size": 10**6}, r"size = 1000000 px is outside"),
        ({"size": 32}, "size 32 differs from kwargs.size"),
        ({"weights_bytes": 12}, "config.json says 12; the files were changed"),
    ],
)
def test_config_values_out_of_bounds_are_refused(spectrum, no_allocation, changes, message):
    _edit(spectrum, **changes)
    with pytest.raises(UserError, match=message):
        load_detector(spectrum)
    assert no_allocation == []


def test_arguments_that_load_files_are_refused(tmp_path, monkeypatch):
    # Released weights would be read (or downloaded) by the constructor: not at the say-so
    # of a model file, and not for a fusion member either.
    monkeypatch.setattr("urllib.request.urlopen", None)
    meso = _export(tmp_path / "meso", DETECTORS, "meso4", {"size": 256})
    _edit(meso, kwargs_weights="DF")
    with pytest.raises(UserError, match=r"kwargs\.weights = 'DF' would load a file"):
        load_detector(meso)
    members = [{"name": "npr", "kwargs": {"size": 16, "width": 4}}]
    fusion = _export(tmp_path / "fusion", DETECTORS, "fusion", {"size": 16, "members": members})
    assert load_detector(fusion).model.registry_name == "fusion"
    bad = [{"name": "meso4", "kwargs": {"size": 256, "weights": "/etc/passwd"}}]
    _edit(fusion, kwargs_members=bad)
    with pytest.raises(UserError, match="member 0: kwargs.weights = '/etc/passwd' would load"):
        load_detector(fusion)


def test_a_huge_config_file_or_a_pickle_as_weights_is_refused(spectrum, tmp_path):
    (spectrum / ef.CONFIG_FILE).write_bytes(b" " * (ef.MAX_CONFIG_BYTES + 1))
    with pytest.raises(UserError, match="not an export's config"):
        load_detector(spectrum)
    other = _export(tmp_path / "other", DETECTORS, "spectrum", {"size": 16, "bins": 4})
    torch.save({"w": torch.zeros(2)}, other / ef.WEIGHTS_FILE)  # a pickle, not safetensors
    _edit(other, weights_bytes=(other / ef.WEIGHTS_FILE).stat().st_size)
    with pytest.raises(UserError, match="model.safetensors cannot be read"):
        load_detector(other)


def test_a_checkpoint_with_crafted_arguments_is_refused(tmp_path, no_allocation):
    state = {"kind": "detector", "arch": {"name": "spectrum", "kwargs": {"size": 300000}}}
    path = save_checkpoint(tmp_path / "best.pt", state | {"model": {}})
    with pytest.raises(UserError, match="outside 1-4096"):
        load_detector(path)
    gan = {"arch": {"generator": {"name": "dcgan", "kwargs": {"size": 16, "z_dim": 10**8}}}}
    path = save_checkpoint(tmp_path / "ckpt-0000000001.pt", gan | {"G_ema": {}, "nimg": 0})
    with pytest.raises(UserError, match="larger than 65536"):
        load_generator(path)
    assert no_allocation == []
