"""One name per thing on the command line: --arch for architectures, from the registries."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from deepfake_lab.cli.app import app
from deepfake_lab.cli.common import DETECTOR_ARCHS, GAN_ARCHS

runner = CliRunner()


def test_help_names_match_the_registries() -> None:
    from deepfake_lab.models import GENERATORS
    from deepfake_lab.models.detectors import DETECTORS

    assert list(GAN_ARCHS) == GENERATORS.names()
    # Every detector but the fusion, which `train fusion` builds from members.
    assert list(DETECTORS.names()) == sorted([*DETECTOR_ARCHS, "fusion"])


@pytest.mark.parametrize(
    "command",
    [
        ["train", "detector"],
        ["tune", "detector"],
        ["eval", "cross-source"],
        ["eval", "resistance"],
        ["train", "gan"],
    ],
)
def test_architecture_flag_is_arch_everywhere(command) -> None:
    text = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "250"}).output
    assert "--arch" in text and "--model " not in text
    names = GAN_ARCHS if command == ["train", "gan"] else DETECTOR_ARCHS
    assert " | ".join(names) in text


@pytest.mark.parametrize("flag", ["--arch", "--model"])
def test_detector_arch_and_its_old_spelling_reach_the_api(tmp_path, flag) -> None:
    res = runner.invoke(
        app,
        ["train", "detector", "--real", str(tmp_path), "--fake", str(tmp_path), flag, "nosuch"],
    )
    assert res.exit_code == 2
    assert "nosuch" in res.output and "Traceback" not in res.output
