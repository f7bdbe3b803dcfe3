"""Detector hyper-parameter search: plans, real trial runs, ranking, resume, CLI."""

import itertools
import json
import signal

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from deepfake_lab.data.procedural import render_faces
from deepfake_lab.errors import UserError
from deepfake_lab.io import read_jsonl
from deepfake_lab.runs.run_dir import create_run_dir
from deepfake_lab.training import tune
from deepfake_lab.training.detector_loop import DetectorResult
from deepfake_lab.training.tune import (
    SearchInterrupted,
    fit_space_to_model,
    plan_trials,
    rank_results,
    tune_detector,
)

TINY = ["train.batch=16", "train.patience=10", "model.kwargs={width: 4}"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """24 real 16 px faces vs 24 fakes with blocky 2x2 pixels (nearest-neighbour up-sampling)."""
    root = tmp_path_factory.mktemp("toy")
    (root / "real").mkdir()
    (root / "fake").mkdir()
    for i, im in enumerate(render_faces(24, 16, seed=0)):
        Image.fromarray(im).save(root / "real" / f"{i:03d}.png")
    for i, im in enumerate(render_faces(24, 16, seed=7)):
        blocky = np.repeat(np.repeat(im[::2, ::2], 2, 0), 2, 1)
        Image.fromarray(blocky).save(root / "fake" / f"{i:03d}.png")
    return root


def test_grid_trains_every_combination_and_ranks_them(toy, tmp_path):
    space = {"optim.lr": [1e-3, 3e-3], "augment.strength": [0.0, 1.0]}
    results = tune_detector(
        [toy / "real"],
        [toy / "fake"],
        space=space,
        base_overrides=TINY,
        out=tmp_path / "runs",
        model="npr",
        size=16,
        epochs=1,
        progress=False,
    )
    tune_dir = tmp_path / "runs" / "00000-tune"
    assert {r["tune_dir"] for r in results} == {str(tune_dir)}
    combos = {(r["overrides"]["optim.lr"], r["overrides"]["augment.strength"]) for r in results}
    assert combos == set(itertools.product(*space.values()))
    assert len(read_jsonl(tune_dir / "results.jsonl")) == 4
    keys = [(-r["val"]["roc_auc"], r["val"]["eer"]) for r in results]
    assert keys == sorted(keys)  # best validation ROC-AUC first, ties by EER
    for r in results:
        cfg = yaml.safe_load(open(f"{r['run_dir']}/config.yaml"))
        assert cfg["optim"]["lr"] == r["overrides"]["optim.lr"]
        assert cfg["augment"]["strength"] == r["overrides"]["augment.strength"]
        assert cfg["model"]["kwargs"] == {"width": 4} and cfg["train"]["epochs"] == 1
        assert r["status"] == "done" and r["val"]["epoch"] == 1
        assert r["run_dir"].startswith(str(tune_dir))
    table = (tune_dir / "results.md").read_text()
    assert table.count("\n| ") == 5  # header + one row per trial
    assert json.loads((tune_dir / "tune.json").read_text())["method"] == "grid"


def test_random_draws_distinct_combinations_deterministically():
    space = {
        "optim.lr": [1e-4, 3e-4, 1e-3],
        "train.batch": [16, 32, 64],
        "augment.strength": [0, 1],
    }
    a = plan_trials(space, "random", trials=5, seed=1)
    assert a == plan_trials(space, "random", trials=5, seed=1)
    assert len(a) == 5 and len({json.dumps(t, sort_keys=True) for t in a}) == 5
    assert all(list(t) == list(space) for t in a)
    assert all(t[k] in space[k] for t in a for k in space)
    assert a != plan_trials(space, "random", trials=5, seed=2)
    assert len(plan_trials(space, "random", trials=100, seed=0)) == 18  # capped at the grid
    assert len(plan_trials(space, "grid")) == 18
    with pytest.raises(UserError, match="unknown search method"):
        plan_trials(space, "bayes")


def test_model_kwargs_only_for_detectors_that_take_them():
    space = {"optim.lr": [1e-3], "model.kwargs.width": [8, 16], "model.kwargs.depth": [18, 34]}
    kept, notes = fit_space_to_model(space, "resnet")
    assert kept == space and notes == []
    kept, notes = fit_space_to_model(space, "npr")
    assert list(kept) == ["optim.lr", "model.kwargs.width"] and "depth" in notes[0]
    with pytest.raises(UserError, match="no key of the search space"):
        fit_space_to_model({"model.kwargs.width": [8]}, "spectrum")


def test_ranking_puts_undefined_last_and_breaks_ties_by_eer():
    rows = [
        {"trial": 0, "val": {"roc_auc": 0.9, "eer": 0.2}},
        {"trial": 1, "val": {}},
        {"trial": 2, "val": {"roc_auc": 0.9, "eer": 0.1}},
        {"trial": 3, "val": {"roc_auc": 0.95, "eer": 0.3}},
    ]
    assert [r["trial"] for r in rank_results(rows)] == [3, 2, 0, 1]


def test_bad_values_fail_before_any_folder(toy, tmp_path):
    with pytest.raises(UserError, match="optim.lr"):
        tune_detector([toy / "real"], [toy / "fake"], space={"optim.lr": [1e-3, -1.0]},
                      out=tmp_path / "runs", model="npr", progress=False)  # fmt: skip
    with pytest.raises(UserError, match="non-empty list"):
        tune_detector([toy / "real"], [toy / "fake"], space={"optim.lr": []},
                      out=tmp_path / "runs", progress=False)  # fmt: skip
    assert not (tmp_path / "runs").exists()


class FakeTrainer:
    """Stands in for train_detector: writes a run folder with one validation record whose
    ROC-AUC grows with the learning rate; interrupts the call numbered ``stop_at``."""

    def __init__(self, stop_at=None):
        self.calls, self.stop_at = [], stop_at

    def __call__(self, real, fake, manifest, config, overrides, *, out, name, resume, **kw):
        self.calls.append((name, resume))
        lr = next(float(o.split("=")[1]) for o in overrides if o.startswith("optim.lr="))
        run = resume or create_run_dir(out, name)
        if len(self.calls) == self.stop_at:
            return DetectorResult(run, None, "interrupted", 1, {}, signal.SIGTERM)
        rec = {"epoch": 1, "Val/roc_auc": min(1.0, 0.5 + 100 * lr), "Val/eer": 0.1}
        (run / "metrics.jsonl").write_text(json.dumps(rec) + "\n")
        return DetectorResult(run, run / "checkpoints" / "best.pt", "done", 5, {})


def test_interrupted_search_keeps_results_and_resumes(toy, tmp_path, monkeypatch):
    fake = FakeTrainer(stop_at=3)
    monkeypatch.setattr(tune, "train_detector", fake)
    args = ([toy / "real"], [toy / "fake"])
    with pytest.raises(SearchInterrupted) as info:
        tune_detector(*args, out=tmp_path / "runs", model="npr", progress=False)
    tune_dir = info.value.tune_dir
    assert info.value.signal == signal.SIGTERM and len(info.value.results) == 2
    assert len(read_jsonl(tune_dir / "results.jsonl")) == 2  # finished trials are kept
    fake.stop_at = None
    results = tune_detector(resume=tune_dir, progress=False)  # data comes from tune.json
    assert len(results) == 6 == len(read_jsonl(tune_dir / "results.jsonl"))
    names = [n for n, _ in fake.calls]
    assert names == ["trial-00", "trial-01", "trial-02", "trial-02", "trial-03", "trial-04",
                     "trial-05"]  # fmt: skip
    assert results[0]["overrides"]["optim.lr"] == 3e-3
    with pytest.raises(UserError, match="other data"):
        tune_detector([toy / "fake"], [toy / "real"], resume=tune_dir, progress=False)


def test_cli_prints_the_ranked_table_and_exits_on_signal(toy, tmp_path, monkeypatch):
    from deepfake_lab.cli.app import app

    space = tmp_path / "space.yaml"
    space.write_text("optim.lr: [0.001, 0.003]\nmodel.kwargs.depth: [18, 34]\n")
    monkeypatch.setattr(tune, "train_detector", FakeTrainer())
    args = ["tune", "detector", "--real", str(toy / "real"), "--fake", str(toy / "fake")]
    args += ["--model", "npr", "--space", str(space), "--out", str(tmp_path / "runs")]
    res = CliRunner().invoke(app, [*args, "--method", "random", "--trials", "1", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert "model.kwargs.depth dropped" in res.output and "ranked by validation" in res.output
    assert "results.md" in res.output
    monkeypatch.setattr(tune, "train_detector", FakeTrainer(stop_at=1))
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 128 + signal.SIGTERM and "--resume" in res.output
