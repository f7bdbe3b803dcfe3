"""The GAN loop: exact resume, outputs of a run, divergence handling, resume guards."""

import json

import pytest
import torch

from deepfake_lab.data.dataset import FaceDataset
from deepfake_lab.errors import UserError
from deepfake_lab.training.checkpoint import list_checkpoints, load_checkpoint
from deepfake_lab.training.gan import TrainingDiverged
from deepfake_lab.training.launch import train_gan

TINY = [
    "model.size=16",
    "model.z_dim=16",
    "model.g_channels=8",
    "model.d_channels=8",
    "model.max_channels=32",
    "train.batch=4",
    "schedule.log_kimg=0.008",
    "schedule.sample_kimg=0.016",
    "schedule.grid=2",
    "loss.r1_interval=2",
]


def _train(tmp_path, data, name, kimg, arch="dcgan", resume=None, extra=()):
    return train_gan(
        data,
        overrides=TINY + list(extra),
        arch=arch,
        kimg=kimg,
        out=tmp_path / "runs",
        name=name,
        resume=resume,
        progress=False,
        tensorboard=False,
    )


@pytest.mark.parametrize("arch", ["dcgan", "fastgan"])
def test_resume_is_bit_identical(tmp_path, tiny_faces, arch):
    # 6 steps straight vs 3 steps + 3 resumed steps (batch 4 -> 0.012 / 0.024 kimg).
    straight = _train(tmp_path, tiny_faces, "straight", 0.024, arch)
    half = _train(tmp_path, tiny_faces, "resumed", 0.012, arch)
    resumed = _train(tmp_path, tiny_faces, "resumed", 0.024, arch, resume="auto")
    assert resumed.run_dir == half.run_dir  # continued in the same folder
    a = load_checkpoint(straight.checkpoint)
    b = load_checkpoint(resumed.checkpoint)
    assert a["nimg"] == b["nimg"] == 24
    for key in ("G", "D", "G_ema"):
        for name, t in a[key].items():
            assert torch.equal(t, b[key][name]), f"{key}.{name} differs after resume"
    for key in ("opt_G", "opt_D"):
        for pid, st in a[key]["state"].items():
            assert torch.equal(st["exp_avg"], b[key]["state"][pid]["exp_avg"])


def test_run_folder_contents(tmp_path, tiny_faces):
    res = _train(
        tmp_path,
        tiny_faces,
        "layout",
        0.024,
        extra=["schedule.checkpoint_kimg=0.008", "schedule.keep_checkpoints=2"],
    )
    run = res.run_dir
    assert run.name == "00000-layout" and res.status == "done"
    assert (run / "config.yaml").is_file() and (run / "log.txt").is_file()
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in records] == [0.008, 0.016, 0.024]
    assert {
        "Loss/G",
        "Loss/D",
        "D/real",
        "D/fake",
        "Loss/R1",
        "Grad/D",
        "Grad/G",
        "Speed/images_per_sec",
        "LR/G",
    } <= set(records[0])
    assert len(list_checkpoints(run / "checkpoints")) == 2  # pruned to keep_checkpoints
    grids = sorted((run / "samples").glob("grid-*.png"))
    assert [g.name for g in grids] == [
        "grid-0000000000.png",
        "grid-0000000016.png",
        "grid-0000000024.png",
    ]
    ckpt = load_checkpoint(res.checkpoint)
    assert ckpt["config"]["model"]["arch"] == "dcgan" and "rng" in ckpt and "opt_D" in ckpt


def test_same_seed_same_weights_different_seed_differs(tmp_path, tiny_faces):
    a = load_checkpoint(_train(tmp_path, tiny_faces, "a", 0.008).checkpoint)["G"]
    b = load_checkpoint(_train(tmp_path, tiny_faces, "b", 0.008).checkpoint)["G"]
    c = load_checkpoint(
        _train(tmp_path, tiny_faces, "c", 0.008, extra=["train.seed=1"]).checkpoint
    )["G"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_nonfinite_loss_stops_and_keeps_last_checkpoint(tmp_path, tiny_faces, monkeypatch):
    first = _train(tmp_path, tiny_faces, "nan", 0.008)
    before = first.checkpoint.read_bytes()
    from deepfake_lab.losses import gan as losses

    loss = losses.GAN_LOSSES.get("nonsat")
    monkeypatch.setattr(loss, "g_loss", lambda self, f: f.mean() * float("nan"))
    with pytest.raises(TrainingDiverged, match="G loss became nan"):
        _train(tmp_path, tiny_faces, "nan", 0.024, resume="auto")
    assert list_checkpoints(first.run_dir / "checkpoints") == [first.checkpoint]
    assert first.checkpoint.read_bytes() == before


def test_resume_refuses_changes_that_alter_the_math(tmp_path, tiny_faces):
    _train(tmp_path, tiny_faces, "guard", 0.008)
    with pytest.raises(UserError, match="cannot change optim.g_lr"):
        _train(tmp_path, tiny_faces, "guard", 0.016, resume="auto", extra=["optim.g_lr=0.1"])


def test_dataset_skips_unreadable_files(tmp_path, tiny_faces):
    (tiny_faces / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = FaceDataset.from_folder(tiny_faces, 16)
    assert len(ds) == 24 and len(ds.skipped) == 1
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (24, 3, 16, 16)
    x = ds.batch(torch.tensor([0, 1]))
    assert x.min() >= -1 and x.max() <= 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images found"):
        FaceDataset.from_folder(tmp_path / "empty", 16)


def test_time_budget_stops_with_a_checkpoint(tmp_path, tiny_faces):
    res = _train(tmp_path, tiny_faces, "budget", 10.0, extra=["train.max_minutes=0.00001"])
    assert res.nimg == 4 and res.checkpoint is not None  # one step, then out of time
    assert load_checkpoint(res.checkpoint)["nimg"] == 4
    assert "max_minutes reached" in (res.run_dir / "log.txt").read_text()
    assert (res.run_dir / "metrics.jsonl").read_text().count("\n") == 1
