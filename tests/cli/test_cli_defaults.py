"""One source of defaults: every CLI option that reaches an API parameter either leaves the
default to the API (None, or an empty list) or has the API's default, so the two can never
drift apart. Every command names the API functions it calls in ``API`` below, so a new
command cannot skip the check."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from enum import Enum
from pathlib import PurePath
from typing import Any

import pytest
import typer.main

from deepfake_lab.cli.app import app

#: command -> the API functions (or option dataclasses) it passes its options to.
API: dict[str, list[str]] = {
    "calibrate": ["deepfake_lab.calibrate:calibrate_detector"],
    "demo": ["deepfake_lab.demo:run_demo"],
    "detect": [
        "deepfake_lab.detect:detect_images",
        "deepfake_lab.video.detect_video:detect_video_files",
        "deepfake_lab.video.detect_video:check_video_options",
    ],
    "export": ["deepfake_lab.export:export_model"],
    "merge": ["deepfake_lab.merge:merge_scans"],
    "generate": [
        "deepfake_lab.generate:generate_images",
        "deepfake_lab.provenance.marking:ProvenanceOptions",
        "deepfake_lab.video.render:render_walk",
    ],
    "verify": ["deepfake_lab.provenance.verify:verify_images"],
    "reconstruct": [
        "deepfake_lab.reconstruct:reconstruct_images",
        "deepfake_lab.provenance.marking:ProvenanceOptions",
    ],
    "serve": [
        "deepfake_lab.serve.models:ModelSet",
        "deepfake_lab.serve.app:create_app",
        "deepfake_lab.serve.limits:ServeLimits",
    ],
    "av-sync": ["deepfake_lab.video.avsync:av_sync"],
    "data prepare": ["deepfake_lab.data.prepare:prepare_dataset"],
    "data zoo": ["deepfake_lab.data.zoo:build_zoo"],
    "eval gan": ["deepfake_lab.evaluation.evaluate:evaluate_gan"],
    "eval detector": [
        "deepfake_lab.evaluation.detector_eval:evaluate_detector",
        "deepfake_lab.evaluation.detector_eval:VideoOptions",
    ],
    "eval cross-source": ["deepfake_lab.evaluation.cross_source:cross_source_matrix"],
    "eval resistance": ["deepfake_lab.evaluation.resistance:detection_resistance"],
    "train gan": ["deepfake_lab.training.launch:train_gan"],
    "train detector": ["deepfake_lab.training.detector_launch:train_detector"],
    "train fusion": ["deepfake_lab.training.fusion:train_fusion"],
    "tune detector": ["deepfake_lab.training.tune:tune_detector"],
}

#: CLI parameter -> API parameter, where the flag reads better than the argument's name.
ALIASES = {
    "arch": "model",
    "face_detector": "detector",
    "window": "window_s",
    "hop": "hop_s",
    "sign_alg": "sign_algorithm",
}

#: (command, CLI parameter): why the CLI default differs from the API's on purpose.
BY_DESIGN = {
    ("av-sync", "lips"): "the CLI takes a tracker name; the API takes the tracker (None: none)",
}


def _commands() -> Iterator[tuple[str, Any]]:
    def walk(cmd: Any, prefix: list[str]) -> Iterator[tuple[str, Any]]:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, [*prefix, name])
        else:
            yield " ".join(prefix), cmd

    yield from walk(typer.main.get_command(app), [])


def _api_defaults(command: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for target in API[command]:
        module, name = target.split(":")
        for p in inspect.signature(
            getattr(importlib.import_module(module), name)
        ).parameters.values():
            if p.default is not inspect.Parameter.empty:
                out.setdefault(p.name, p.default)
    return out


def _same(cli: Any, api: Any) -> bool:
    if cli is None or cli == [] or cli == ():  # the API decides
        return True
    if isinstance(api, Enum):
        api = api.value
    if isinstance(cli, PurePath) or isinstance(api, PurePath):  # "runs" and Path("runs")
        return str(cli) == str(api)
    if isinstance(api, (list, tuple)) and isinstance(cli, str):  # "fid,kid" for a list
        return cli == ",".join(map(str, api))
    return cli == api or (isinstance(api, (list, tuple)) and list(cli) == list(api))


def test_every_command_names_its_api() -> None:
    assert sorted(name for name, _ in _commands()) == sorted(API)


@pytest.mark.parametrize("command", sorted(API))
def test_cli_defaults_are_the_api_defaults(command: str) -> None:
    cmd = dict(_commands())[command]
    api = _api_defaults(command)
    matched, wrong = 0, []
    for p in cmd.params:
        key = ALIASES.get(p.name, p.name)
        if key not in api or (command, p.name) in BY_DESIGN:
            continue
        matched += 1
        if not _same(p.default, api[key]):
            wrong.append(f"--{p.name.replace('_', '-')}: CLI {p.default!r}, API {api[key]!r}")
    assert not wrong, f"{command}: " + "; ".join(wrong)
    assert matched, f"{command}: no option reaches {API[command]}: is the table right?"


def test_a_drifted_default_is_caught(monkeypatch) -> None:
    """The check is not vacuous: change an API default and it fails."""
    import deepfake_lab.generate as gen

    original = gen.generate_images
    sig = inspect.signature(original)
    params = [p.replace(default=7) if p.name == "batch" else p for p in sig.parameters.values()]

    def drifted(*args, **kwargs):  # pragma: no cover - only its signature is read
        return original(*args, **kwargs)

    drifted.__signature__ = sig.replace(parameters=params)
    monkeypatch.setattr(gen, "generate_images", drifted)
    with pytest.raises(AssertionError, match="--batch: CLI 64, API 7"):
        test_cli_defaults_are_the_api_defaults("generate")
