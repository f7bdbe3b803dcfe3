"""Detector training: learns a toy real/fake split, calibrates, resumes exactly."""

import json

import pytest
import torch

from deepfake_lab.errors import UserError
from deepfake_lab.runs.checkpoint import list_checkpoints, load_checkpoint
from deepfake_lab.training.detector_launch import train_detector
from detector_toys import make_toy_sets, run_toy_training
from interrupts import signal_at_step


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """40 real 16 px faces vs 40 fakes made blocky by 2x nearest-neighbour up-sampling."""
    return make_toy_sets(tmp_path_factory.mktemp("toy"), n=40)


def _train(toy, tmp_path, name, epochs, model="npr", resume=None, extra=()):
    return run_toy_training(
        toy,
        tmp_path / "runs",
        name,
        epochs,
        model,
        kwargs="{width: 8}" if model == "npr" else None,
        extra=["train.patience=10", *extra],
        resume=resume,
    )


def test_learns_calibrates_and_writes_the_run(toy, tmp_path):
    res = _train(toy, tmp_path, "npr", 4)
    assert res.status == "done" and res.best is not None
    best = load_checkpoint(res.best)
    cal = json.loads((res.run_dir / "calibration.json").read_text())
    assert best["calibration"] == cal and cal["temperature"] > 0 and 0 <= cal["threshold"] <= 1
    records = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert max(r["Val/roc_auc"] for r in records) >= 0.9  # an easy artefact to find


def test_interrupted_run_resumes_exactly(toy, tmp_path, monkeypatch):
    from deepfake_lab.training.detector import DetectorTrainer

    straight = _train(toy, tmp_path, "a", 2)
    with signal_at_step(monkeypatch, DetectorTrainer, 3):  # mid-epoch (5 steps/epoch)
        stopped = _train(toy, tmp_path, "b", 2)
    assert stopped.status == "interrupted" and stopped.step == 3
    resumed = _train(toy, tmp_path, "b", 2, resume=stopped.run_dir)
    assert resumed.status == "done" and resumed.run_dir == stopped.run_dir
    a = load_checkpoint(list_checkpoints(straight.run_dir / "checkpoints")[-1])
    b = load_checkpoint(list_checkpoints(resumed.run_dir / "checkpoints")[-1])
    assert a["step"] == b["step"] == 10
    for k, t in a["model"].items():
        assert torch.equal(t, b["model"][k]), k
    assert a["best_auc"] == b["best_auc"]


def test_user_errors_before_any_folder(toy, tmp_path):
    with pytest.raises(UserError, match="unknown detector"):
        _train(toy, tmp_path, "x", 1, model="nope")
    with pytest.raises(UserError, match="no fake images"):
        train_detector([toy / "real"], [], out=tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()


def test_undecodable_images_are_counted_reported_and_listed(tmp_path):
    """Images that do not decode cost only themselves, and the user is told how many of each
    class went and what is left (they used to vanish without a word)."""
    import io

    from rich.console import Console

    sets = make_toy_sets(tmp_path / "toy", n=12)
    (sets / "real" / "broken[red].png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (sets / "real" / "empty.png").write_bytes(b"")
    (sets / "fake" / "text.png").write_text("hello")
    buf = io.StringIO()
    res = run_toy_training(
        sets, tmp_path / "runs", "skips", 1, console=Console(file=buf, width=400)
    )
    text = buf.getvalue()
    assert "3 of 27 images could not be decoded" in text
    assert "2 real, 1 fake: 12 real and 12 fake remain" in text
    # the name is shown as it is, not read as markup, by the warning and by the log echo
    assert text.count("broken[red].png") == 2
    lines = [json.loads(x) for x in (res.run_dir / "skipped.jsonl").read_text().splitlines()]
    assert sorted(p["path"].rsplit("/", 1)[1] for p in lines) == [
        "broken[red].png",
        "empty.png",
        "text.png",
    ]
    assert all(line["reason"] and line["split"] in {"train", "val"} for line in lines)
    assert "could not be decoded" in (res.run_dir / "log.txt").read_text()


def test_init_from_a_run_folder_or_its_export(toy, tmp_path):
    """``--init`` takes what ``eval detector`` takes: a run folder (its best.pt), a
    checkpoint, or an export folder, and copies every tensor."""
    from deepfake_lab.export import export_detector
    from deepfake_lab.models.detectors import build_detector
    from deepfake_lab.training.detector import init_weights

    res = _train(toy, tmp_path, "src", 1)
    best = load_checkpoint(res.run_dir / "checkpoints" / "best.pt")["model"]
    export_detector(res.run_dir, tmp_path / "exp")
    for source in (res.run_dir, res.best, tmp_path / "exp"):
        fresh = build_detector("npr", size=16, width=8)
        report = init_weights(fresh, source)
        assert "0 missing" in report, (source, report)
        for k, t in fresh.state_dict().items():
            assert torch.equal(t, best[k]), (source, k)
    with pytest.raises(UserError, match="no checkpoint found"):
        init_weights(build_detector("npr", size=16, width=8), tmp_path)


def test_a_saturated_validation_keeps_the_lowest_loss_not_the_first_epoch(toy, tmp_path):
    """Once ROC-AUC is 1.0 every epoch, the best checkpoint is the tied epoch with the lowest
    validation loss (the old rule kept the first one: the least trained weights)."""
    res = _train(toy, tmp_path, "npr", 6)
    records = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    top = max(r["Val/roc_auc"] for r in records)
    tied = [r for r in records if r["Val/roc_auc"] == top]
    assert len(tied) >= 2  # the toy saturates: the rule is exercised
    want = min(tied, key=lambda r: (r["Val/loss"], r["epoch"]))
    assert want is not tied[0]  # and it differs from the first-best rule here
    assert load_checkpoint(res.best)["step"] == want["step"]


def test_improves_breaks_roc_auc_ties_by_loss():
    from deepfake_lab.training.detector_validation import improves

    assert improves(0.9, 5.0, 0.8, 0.1)
    assert not improves(0.8, 0.01, 0.9, 5.0)
    assert improves(1.0, 0.1, 1.0, 0.2)
    assert not improves(1.0, 0.2, 1.0, 0.2)  # a full tie keeps the earlier checkpoint
    assert improves(0.5, 0.7, -1.0, float("inf"))  # the first validation always counts
