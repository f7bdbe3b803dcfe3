"""Weight averaging of detector training: the averages themselves, and a run that validates,
keeps and resumes its average exactly."""

import pytest
import torch
from torch import nn

from deepfake_lab.errors import UserError
from deepfake_lab.runs.checkpoint import list_checkpoints, load_checkpoint
from deepfake_lab.training.detector_config import DetectorConfig
from deepfake_lab.training.weight_average import WeightAverage
from detector_toys import make_toy_sets, run_toy_training
from interrupts import signal_at_step


def _trajectory(n: int) -> tuple[nn.Module, list[torch.Tensor]]:
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    return net, [torch.randn(2, 3) for _ in range(n)]


def test_uniform_average_is_the_mean_of_the_steps_after_its_start():
    net, ws = _trajectory(7)
    avg = WeightAverage(net, "uniform", steps_per_epoch=3, start_epoch=1.0)
    for step, w in enumerate(ws, start=1):
        with torch.no_grad():
            net.weight.copy_(w)
        avg.update(net, step)
        if step <= 3:  # before the start epoch the trained network is the one scored
            assert avg.eval_model(net) is net
    assert avg.count == 4
    assert torch.allclose(avg.eval_model(net).weight, torch.stack(ws[3:]).mean(0), atol=1e-6)


def test_ema_halves_an_update_after_its_half_life():
    net, ws = _trajectory(5)
    avg = WeightAverage(net, "ema", steps_per_epoch=2, half_life_epochs=1.0)
    decay = 0.5 ** (1 / 2)
    expect = None
    for step, w in enumerate(ws, start=1):
        with torch.no_grad():
            net.weight.copy_(w)
        avg.update(net, step)
        expect = w.clone() if expect is None else decay * expect + (1 - decay) * w
    assert torch.allclose(avg.eval_model(net).weight, expect, atol=1e-6)


def test_averaging_without_precise_bn_is_refused():
    with pytest.raises(ValueError, match="precise_bn_images"):
        DetectorConfig(average={"method": "uniform"}, train={"precise_bn_images": 0})
    assert DetectorConfig().average.method == "none"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_sets(tmp_path_factory.mktemp("toy"), n=40)


def _train(toy, tmp_path, name, resume=None, method="uniform"):
    extra = ["train.patience=10", f"average.method={method}", "average.start_epoch=1"]
    return run_toy_training(toy, tmp_path / "runs", name, 2, extra=extra, resume=resume)


def test_a_run_keeps_its_average_and_resumes_it_exactly(toy, tmp_path, monkeypatch):
    from deepfake_lab.training.detector import DetectorTrainer

    straight = _train(toy, tmp_path, "a")
    last = load_checkpoint(list_checkpoints(straight.run_dir / "checkpoints")[-1])
    # 40 + 40 images, 15% held out, batch 16: 5 steps an epoch; epoch 2 is averaged.
    assert last["step"] == 10 and last["average"]["count"] == 5
    assert last["average"]["method"] == "uniform"
    # What readers score is the average, not the last step's weights.
    assert any(
        not torch.equal(t, last["train_model"][k])
        for k, t in last["model"].items()
        if t.is_floating_point()
    )
    best = load_checkpoint(straight.best)
    assert "calibration" in best
    with signal_at_step(monkeypatch, DetectorTrainer, 7):  # inside the averaged epoch
        stopped = _train(toy, tmp_path, "b")
    assert stopped.status == "interrupted" and stopped.step == 7
    resumed = _train(toy, tmp_path, "b", resume=stopped.run_dir)
    b = load_checkpoint(list_checkpoints(resumed.run_dir / "checkpoints")[-1])
    assert b["average"]["count"] == 5
    for key in ("model", "train_model"):
        for k, t in last[key].items():
            assert torch.equal(t, b[key][k]), (key, k)


def test_an_unknown_method_is_a_user_error(toy, tmp_path):
    with pytest.raises(UserError, match="average.method"):
        _train(toy, tmp_path, "x", method="swad")
    assert not (tmp_path / "runs").exists()
