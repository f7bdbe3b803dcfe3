"""Adversarial training of detectors: the config, --adv-train through the CLI, eval --attacks,
and exact resume with PGD examples in every batch."""

import json

import pytest
import torch
from typer.testing import CliRunner

from deepfake_lab.runs.checkpoint import list_checkpoints, load_checkpoint
from deepfake_lab.training.detector import DetectorTrainer
from deepfake_lab.training.detector_config import DetectorConfig
from detector_toys import make_toy_sets, run_toy_training
from interrupts import signal_at_step

runner = CliRunner()


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """40 real 16 px faces vs 40 nearest-neighbour 2x up-sampled fakes."""
    return make_toy_sets(tmp_path_factory.mktemp("toy"), n=40)


def _train(toy, tmp_path, name, epochs, resume=None):
    return run_toy_training(
        toy,
        tmp_path / "runs",
        name,
        epochs,
        extra=["train.patience=10"],
        resume=resume,
        adv_train=True,
    )


def test_adv_config_defaults_and_fractions():
    a = DetectorConfig().adv
    assert not a.enabled and a.eps == pytest.approx(4 / 255) and a.steps == 3 and a.ratio == 0.5
    assert DetectorConfig(adv={"eps": "2/255", "step_size": "1/255"}).adv.eps == 2 / 255
    with pytest.raises(ValueError):
        DetectorConfig(adv={"eps": "4/0"})
    with pytest.raises(ValueError):
        DetectorConfig(adv={"ratio": 0})


def test_adv_training_resumes_exactly(toy, tmp_path, monkeypatch):
    straight = _train(toy, tmp_path, "a", 2)
    with signal_at_step(monkeypatch, DetectorTrainer, 3):  # mid-epoch (5 steps/epoch)
        stopped = _train(toy, tmp_path, "b", 2)
    assert stopped.status == "interrupted" and stopped.step == 3
    resumed = _train(toy, tmp_path, "b", 2, resume=stopped.run_dir)
    assert resumed.status == "done"
    a = load_checkpoint(list_checkpoints(straight.run_dir / "checkpoints")[-1])
    b = load_checkpoint(list_checkpoints(resumed.run_dir / "checkpoints")[-1])
    assert a["config"]["adv"]["enabled"] is True and a["step"] == b["step"] == 10
    assert torch.equal(a["adv_gen"], b["adv_gen"])
    for k, t in a["model"].items():
        assert torch.equal(t, b["model"][k]), k
    records = [json.loads(x) for x in (straight.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= r["Acc/adv"] <= 1 for r in records)


def test_adv_step_leaves_train_mode_and_differs_from_plain(toy, tmp_path):
    from deepfake_lab.training.detector_launch import load_detector_data

    cfg = DetectorConfig(
        data={"real": [str(toy / "real")], "fake": [str(toy / "fake")]},
        model={"arch": "npr", "size": 16, "kwargs": {"width": 8}},
        train={"batch": 16},
    )
    train, val, _ = load_detector_data(cfg)
    cpu = torch.device("cpu")

    def first_step(adv: bool) -> tuple[DetectorTrainer, dict]:
        torch.manual_seed(0)
        c = cfg.model_copy(update={"adv": cfg.adv.model_copy(update={"enabled": adv})})
        trainer = DetectorTrainer(c, train, val, cpu)
        return trainer, trainer.train_step()

    plain, s_plain = first_step(False)
    hard, s_hard = first_step(True)
    assert hard.model.training and "Acc/adv" in s_hard and "Acc/adv" not in s_plain
    assert s_hard["Loss/train"] != s_plain["Loss/train"]  # half the batch was attacked
    # The random starts came from the trainer's own generator (seeded train.seed + 3).
    assert not torch.equal(hard.adv_gen.get_state(), torch.Generator().manual_seed(3).get_state())


def test_cli_adv_train_then_eval_attacks(toy, tmp_path):
    from deepfake_lab.cli.app import app

    res = runner.invoke(
        app,
        [
            "train", "detector", "--real", str(toy / "real"), "--fake", str(toy / "fake"),
            "--model", "npr", "--size", "16", "--epochs", "2", "--out", str(tmp_path / "runs"),
            "--no-progress", "--adv-train", "--set", "train.batch=16",
            "--set", "model.kwargs={width: 8}", "--set", "adv.eps=2/255",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    run = tmp_path / "runs" / "00000-detector"
    cfg = load_checkpoint(run / "checkpoints" / "best.pt")["config"]["adv"]
    assert cfg["enabled"] is True and cfg["eps"] == pytest.approx(2 / 255)
    out = tmp_path / "eval.json"
    res = runner.invoke(
        app,
        [
            "eval", "detector", str(run), "--real", str(toy / "real"), "--fake", str(toy / "fake"),
            "--no-robustness", "--bootstrap", "0", "--attacks", "--json", str(out),
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "white-box attacks" in res.output
    a = json.loads(out.read_text())["attacks"]
    assert set(a["fgsm"]) == set(a["pgd"]) == {"1", "2", "4"}
    for row in (a["clean"], *a["fgsm"].values(), *a["pgd"].values()):
        assert {"roc_auc", "accuracy", "detection_rate"} <= set(row)
    assert a["pgd"]["4"]["max_linf_255"] <= 4 + 1e-4
