"""CLI helpers: the stage progress display."""

from __future__ import annotations

import pytest
import rich.progress

from deepfake_lab.cli.common import stage_progress


class _Recorder(rich.progress.Progress):
    """A Progress that records the bars it is asked to show."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log: list[tuple] = []

    def add_task(self, description, total=100.0, **kw):
        self.log.append(("add", description, total))
        return super().add_task(description, total=total, **kw)

    def remove_task(self, task_id):
        self.log.append(("remove",))
        super().remove_task(task_id)


def test_a_stage_that_starts_over_gets_a_new_bar_with_its_own_total(monkeypatch):
    made = []

    def factory(*args, **kwargs):
        made.append(_Recorder(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(rich.progress, "Progress", factory)
    with stage_progress({"frames": "frames"}) as report:
        for done in (1, 2, 3):
            report("frames", done, 3)  # the first video
        report("frames", 1, 5)  # the next: another total
        report("frames", 1, None)  # and one whose length is unknown
        report("frames", 2, None)
    assert made[0].log == [
        ("add", "frames", 3),
        ("remove",),
        ("add", "frames", 5),
        ("remove",),
        ("add", "frames", None),
    ]


@pytest.mark.parametrize(
    "command", [["data", "prepare"], ["detect"], ["eval", "detector"], ["av-sync"]]
)
def test_face_detector_flag_named_once(command) -> None:
    from typer.testing import CliRunner

    from deepfake_lab.cli.app import app
    from deepfake_lab.faces.detectors import FACE_DETECTORS

    help_text = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output
    assert "--face-detector" in help_text
    # Choices come from the registry; the old spelling is accepted but not advertised.
    assert " | ".join(FACE_DETECTORS.names()) in help_text
    assert "--detector " not in help_text


@pytest.mark.parametrize("flag", ["--face-detector", "--detector"])
def test_face_detector_flag_and_its_old_spelling_reach_the_pipeline(tmp_path, flag) -> None:
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from deepfake_lab.cli.app import app

    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(src / "a.png")
    res = CliRunner().invoke(
        app, ["data", "prepare", str(src), str(tmp_path / "out"), flag, "no-such-finder"]
    )
    assert res.exit_code != 0
    assert "no-such-finder" in res.output and "Traceback" not in res.output
