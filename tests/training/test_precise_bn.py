"""Precise BatchNorm: running statistics recomputed from training batches before validation."""

import pytest
import torch
from torch import nn

from deepfake_lab.runs.checkpoint import list_checkpoints, load_checkpoint
from deepfake_lab.training import detector as detector_module
from deepfake_lab.training.precise_bn import recompute_batchnorm
from detector_toys import make_toy_sets, run_toy_training


class _Net(nn.Module):
    """BN on the input, dropout, a conv, BN; ``frozen`` stays in eval mode like a frozen
    backbone's layers."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen = nn.BatchNorm2d(3)
        self.bn1 = nn.BatchNorm2d(3)
        self.drop = nn.Dropout(0.5)
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn2 = nn.BatchNorm2d(4)

    def train(self, mode: bool = True):
        super().train(mode)
        self.frozen.training = False
        return self

    def forward(self, x):
        return self.bn2(self.conv(self.drop(self.bn1(self.frozen(x)))))


def test_statistics_are_the_average_of_the_batches_and_nothing_else_moves():
    torch.manual_seed(0)
    net = _Net()
    net.frozen.running_mean.fill_(0.25)
    net.frozen.running_var.fill_(4.0)
    batches = [torch.randn(8, 3, 6, 6) * s + s for s in (0.5, 1.0, 3.0)]
    net.train()
    for x in batches:  # an exponential average that has not converged
        net(x)
    rng = torch.get_rng_state()
    assert recompute_batchnorm(net, iter(batches)) == 2  # bn1, bn2; not `frozen`
    assert net.training and not net.frozen.training  # modes restored
    assert torch.equal(torch.get_rng_state(), rng)  # dropout stayed off: no random draw
    assert torch.equal(net.frozen.running_mean, torch.full((3,), 0.25))
    assert torch.equal(net.frozen.running_var, torch.full((3,), 4.0))
    assert net.bn1.momentum == 0.1  # restored
    inputs = [(x - 0.25) / (4.0 + net.frozen.eps) ** 0.5 for x in batches]  # after `frozen`
    mean = torch.stack([x.mean((0, 2, 3)) for x in inputs]).mean(0)
    var = torch.stack([x.var((0, 2, 3)) for x in inputs]).mean(0)  # unbiased per batch
    torch.testing.assert_close(net.bn1.running_mean, mean)
    torch.testing.assert_close(net.bn1.running_var, var)
    assert int(net.bn1.num_batches_tracked) == 3
    # bn2 sees conv(bn1(x)) with bn1 normalising by each batch's own statistics.
    with torch.no_grad():
        net.eval()
        outs = [net.conv(nn.functional.batch_norm(x, None, None, training=True)) for x in inputs]
    torch.testing.assert_close(
        net.bn2.running_mean, torch.stack([o.mean((0, 2, 3)) for o in outs]).mean(0)
    )


def test_a_model_without_batchnorm_is_left_alone():
    net = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Dropout())
    assert recompute_batchnorm(net, iter(())) == 0


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_sets(tmp_path_factory.mktemp("toy"), n=40)


def test_validation_and_checkpoints_see_recomputed_statistics(toy, tmp_path, monkeypatch):
    seen = []

    def spy(model, batches):
        n = recompute_batchnorm(model, batches)
        seen.append({k: v.clone() for k, v in model.state_dict().items() if "running" in k})
        return n

    monkeypatch.setattr(detector_module, "recompute_batchnorm", spy)
    res = run_toy_training(toy, tmp_path, "pbn", 2, extra=["train.patience=10"])
    assert len(seen) == 2  # once per epoch
    last = load_checkpoint(list_checkpoints(res.run_dir / "checkpoints")[-1])
    for k, v in seen[-1].items():
        assert torch.equal(last["model"][k], v), k
    # The whole training split (68 images, under the default 512) as whole batches of 16.
    assert "train {'real': 34, 'fake': 34}" in (res.run_dir / "log.txt").read_text()
    assert int(last["model"]["stem.1.num_batches_tracked"]) == round(68 / 16)


def test_the_weights_train_the_same_with_or_without_it(toy, tmp_path):
    a = run_toy_training(toy, tmp_path, "on", 2, extra=["train.patience=10"])
    b = run_toy_training(
        toy, tmp_path, "off", 2, extra=["train.patience=10", "train.precise_bn_images=0"]
    )
    sa = load_checkpoint(list_checkpoints(a.run_dir / "checkpoints")[-1])["model"]
    sb = load_checkpoint(list_checkpoints(b.run_dir / "checkpoints")[-1])["model"]
    params = [k for k in sa if "running" not in k and "num_batches" not in k]
    assert params and all(torch.equal(sa[k], sb[k]) for k in params)
    assert not torch.equal(sa["stem.1.running_var"], sb["stem.1.running_var"])
