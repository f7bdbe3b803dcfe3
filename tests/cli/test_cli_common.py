"""CLI helpers: the stage progress display."""

from __future__ import annotations

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
