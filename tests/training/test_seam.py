"""Blend-boundary supervision of detector training (``seam.weight``)."""

import json

import pytest
import torch

from deepfake_lab.errors import UserError
from deepfake_lab.models.detectors import build_detector
from deepfake_lab.runs.checkpoint import list_checkpoints, load_checkpoint
from deepfake_lab.training.detector_launch import train_detector
from deepfake_lab.training.seam import SeamHead
from interrupts import signal_at_step


@pytest.fixture(scope="module")
def reals(procedural_reals):
    return procedural_reals


def _train(reals, tmp_path, name, weight=1.0, pseudo=("sbi",), fake=None, **kw):
    return train_detector(
        [reals],
        fake,
        model="npr",
        size=32,
        epochs=2,
        out=tmp_path / "runs",
        name=name,
        progress=False,
        tensorboard=False,
        pseudo_fake=list(pseudo),
        overrides=[
            "train.batch=8",
            "model.kwargs={width: 8}",
            "data.landmarks=template",
            "train.patience=10",
            f"seam.weight={weight}",
            "augment.affine.p=0.5",
        ],
        **kw,
    )


def test_a_seam_run_logs_its_loss_keeps_its_head_and_resumes_exactly(reals, tmp_path, monkeypatch):
    from deepfake_lab.training.detector import DetectorTrainer

    straight = _train(reals, tmp_path, "a")
    assert straight.status == "done"
    lines = (straight.run_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    seam = [r["Loss/seam"] for r in records if "Loss/seam" in r]
    assert seam and all(0 < v < 1 for v in seam)
    assert (straight.run_dir / "seams.png").is_file()  # taught and found boundaries
    html = (straight.run_dir / "index.html").read_text()
    assert "Blend boundary" in html and "seams.png" in html
    with signal_at_step(monkeypatch, DetectorTrainer, 3):
        stopped = _train(reals, tmp_path, "b")
    assert stopped.status == "interrupted"
    resumed = _train(reals, tmp_path, "b", resume=stopped.run_dir)
    a = load_checkpoint(list_checkpoints(straight.run_dir / "checkpoints")[-1])
    b = load_checkpoint(list_checkpoints(resumed.run_dir / "checkpoints")[-1])
    assert a["step"] == b["step"] and a["seam_head"] is not None
    for k, t in a["seam_head"].items():
        assert torch.equal(t, b["seam_head"][k]), k
    for k, t in a["model"].items():
        assert torch.equal(t, b["model"][k]), k


def test_the_boundary_loss_changes_the_detector_and_off_leaves_no_head(reals, tmp_path):
    def last(run):
        return load_checkpoint(list_checkpoints(run.run_dir / "checkpoints")[-1])

    on, off = last(_train(reals, tmp_path, "on")), last(_train(reals, tmp_path, "off", weight=0))
    assert off["seam_head"] is None
    assert any(not torch.equal(t, off["model"][k]) for k, t in on["model"].items())


def test_seam_runs_need_pseudo_fakes(reals, tmp_path):
    with pytest.raises(UserError, match="--pseudo-fake"):
        _train(reals, tmp_path, "x", pseudo=(), fake=[reals])


def test_a_frozen_backbone_is_refused_as_the_head_could_not_shape_it(reals, tmp_path):
    with pytest.raises(UserError, match="--freeze backbone"):
        _train(reals, tmp_path, "x", freeze="backbone")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.pt"))


def test_the_head_learns_where_the_boundary_is():
    """A few steps on a fixed target: the loss falls, and unknown images count for nothing."""
    torch.manual_seed(0)
    model = build_detector("npr", size=32, width=8)
    head = SeamHead(model, 32, torch.device("cpu"))
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    x[:2, :, 8:24, 8:24] = 0.9  # what marks the region: flat, where the rest is noise
    seams = torch.zeros(4, 32, 32)
    seams[:2, 8:24, 8:24] = 1.0
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        head.capture(True)
        model(x)
        loss = head.loss(seams, torch.ones(4, dtype=torch.bool))
        head.capture(False)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    prob = head.predict(x, model)  # (4, h, w): high on the marked region only
    h = prob.shape[-1]
    inside = prob[:2, h // 4 + 1 : 3 * h // 4 - 1, h // 4 + 1 : 3 * h // 4 - 1].mean()
    assert inside > 2 * prob[2:].mean()
    head.capture(True)
    model(x)
    assert head.loss(seams, torch.zeros(4, dtype=torch.bool)).item() == 0.0
    head.predict(x, model)
    assert head._feats is None  # capture is off after a prediction


def test_a_detector_without_a_feature_map_is_refused():
    model = build_detector("spectrum", size=32)
    if model.gradcam_layer() is not None:  # pragma: no cover - the registry changed
        pytest.skip("spectrum has a feature map now")
    with pytest.raises(UserError, match="seam.weight"):
        SeamHead(model, 32, torch.device("cpu"))
