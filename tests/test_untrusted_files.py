"""Files from strangers never run code: every loader refuses a malicious pickle, and the
source holds no loader that could unpickle (checked on the code itself, so a new one fails
here first)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_lab.errors import UserError

SRC = Path(__file__).resolve().parents[1] / "src" / "deepfake_lab"


class _Boom:
    """Unpickling this runs a shell command: what a hostile checkpoint carries."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    """A torch file holding ``_Boom`` next to tensors, and the file its payload would make."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "deepfake-lab/checkpoint", "w": torch.zeros(2), "x": _Boom(marker)}, path)
    return path, marker


def test_checkpoint_loading_refuses_it(evil):
    from deepfake_lab.models.detectors.loading import load_detector
    from deepfake_lab.models.generators.loading import load_generator
    from deepfake_lab.runs.checkpoint import load_checkpoint

    path, marker = evil
    for load in (load_checkpoint, load_detector, load_generator):
        with pytest.raises(UserError, match="cannot read checkpoint"):
            load(path)
    assert not marker.exists()


def test_feature_weights_loading_refuses_it(evil, tmp_path):
    from deepfake_lab.metrics.features import inception, resnet_cifar

    path, marker = evil
    with pytest.raises(UserError, match="not a plain PyTorch state dict"):
        inception.load_state_dict_file(path)
    spec = resnet_cifar.WeightsSpec(path.name, resnet_cifar.sha256_file(path))
    with pytest.raises(UserError, match="refuse to unpickle"):
        resnet_cifar.load_checked_state_dict(path, spec, "test")
    assert not marker.exists()


def test_an_export_with_a_pickle_for_weights_is_refused(evil, tmp_path):
    import json

    from deepfake_lab.models.detectors.loading import load_detector
    from deepfake_lab.models.export_format import CONFIG_FILE, DETECTOR_FORMAT, WEIGHTS_FILE

    path, marker = evil
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / WEIGHTS_FILE).write_bytes(path.read_bytes())
    meta = {"format": DETECTOR_FORMAT, "name": "npr", "kwargs": {"size": 16, "width": 4}}
    (folder / CONFIG_FILE).write_text(json.dumps(meta | {"weights_sha256": "0" * 64}))
    with pytest.raises(UserError, match="cannot be read"):
        load_detector(folder)
    assert not marker.exists()


def test_a_statistics_cache_entry_with_objects_is_ignored(tmp_path):
    from deepfake_lab.metrics.stats_cache import StatsCache

    marker = tmp_path / "pwned"
    cache = StatsCache(tmp_path / "stats")
    entry = cache.path_for("k" * 64, "space")
    entry.parent.mkdir(parents=True)
    objects = np.array([_Boom(marker)], dtype=object)
    np.savez(entry, key=np.array("k" * 64), format=np.array(1), mu=objects)
    assert cache.load("k" * 64, "space", need_features=False) is None  # a miss, recomputed
    assert not marker.exists()


# -- the code itself ---------------------------------------------------------------------------
def _calls(name: str) -> list[tuple[Path, ast.Call]]:
    """Every call of ``<anything>.<name>(...)`` or ``name(...)`` in the package."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == name:
                    found.append((path, node))
    return found


def _keyword(call: ast.Call, name: str) -> object:
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def _where(path: Path, call: ast.Call) -> str:
    return f"{path.relative_to(SRC)}:{call.lineno}"


def test_every_torch_load_is_weights_only():
    calls = [(p, c) for p, c in _calls("load") if ast.unparse(c.func) == "torch.load"]
    assert calls, "the scan found no torch.load at all: is it still looking at the package?"
    bad = [_where(p, c) for p, c in calls if _keyword(c, "weights_only") is not True]
    assert bad == [], "torch.load without weights_only=True"


def test_every_np_load_refuses_pickles():
    calls = [(p, c) for p, c in _calls("load") if ast.unparse(c.func) in ("np.load", "numpy.load")]
    bad = [_where(p, c) for p, c in calls if _keyword(c, "allow_pickle") is not False]
    assert bad == [], "np.load without allow_pickle=False"


def test_no_other_unpickler_and_torchscript_only_behind_the_opt_in():
    unpicklers = ("pickle.load", "pickle.loads", "joblib.load", "dill.load", "cloudpickle.load")
    for name in ("load", "loads"):
        bad = [_where(p, c) for p, c in _calls(name) if ast.unparse(c.func) in unpicklers]
        assert bad == [], "a loader that unpickles arbitrary objects"
    runs_code = [
        _where(p, c)
        for p, c in _calls("load")
        if ast.unparse(c.func) in ("torch.jit.load", "torch.export.load")
    ]
    assert runs_code and all(w.startswith("metrics/features/torchscript.py") for w in runs_code)
