"""The GAN loop: exact resume, outputs of a run, divergence handling, resume guards."""

import json

import pytest
import torch

from deepfake_lab.config import build_config
from deepfake_lab.data.dataset import FaceDataset
from deepfake_lab.devices import native_bf16, resolve_device
from deepfake_lab.errors import UserError
from deepfake_lab.runs.checkpoint import list_checkpoints, load_checkpoint
from deepfake_lab.training import gan as gan_module
from deepfake_lab.training.gan import GanTrainer, TrainingDiverged
from deepfake_lab.training.gan_config import GanConfig
from deepfake_lab.training.launch import train_gan
from tiny_configs import GAN_TINY

TINY = [*GAN_TINY, "loss.r1_interval=2"]


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


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize("arch", ["dcgan", "fastgan", "vae", "stylegan2"])
def test_resume_is_bit_identical(tmp_path, tiny_faces, arch, bf16, monkeypatch):
    # 6 steps straight vs 3 steps + 3 resumed steps (batch 4 -> 0.012 / 0.024 kimg), in both
    # numerics on every machine: bf16 autocast forced on (it runs, emulated, on any CPU) or
    # switched off, whatever this CPU would choose by default.
    monkeypatch.setattr(gan_module, "native_bf16", lambda device: True)
    amp = [f"train.amp={str(bf16).lower()}"]
    straight = _train(tmp_path, tiny_faces, "straight", 0.024, arch, extra=amp)
    half = _train(tmp_path, tiny_faces, "resumed", 0.012, arch, extra=amp)
    resumed = _train(tmp_path, tiny_faces, "resumed", 0.024, arch, resume="auto", extra=amp)
    assert resumed.run_dir == half.run_dir  # continued in the same folder
    _assert_same_training_state(
        load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    )


@pytest.mark.parametrize("native", [False, True])
def test_bf16_autocast_runs_where_the_cpu_computes_it_natively(tiny_faces, native, monkeypatch):
    monkeypatch.setattr(gan_module, "native_bf16", lambda device: native)
    ds = FaceDataset.from_folder(tiny_faces, 16)
    dtypes = {}
    for amp in (True, False):
        cfg = build_config(GanConfig, None, [*TINY, "model.arch=fastgan", f"train.amp={amp}"])
        trainer = GanTrainer(cfg, ds, torch.device("cpu"))
        hook = trainer.G.register_forward_hook(
            lambda m, i, out, amp=amp: dtypes.update({amp: out.dtype})
        )
        stats = trainer.train_step()
        hook.remove()
        assert all(torch.isfinite(v).all() for v in stats.values())
    # train.amp asks for bf16; it is used only where it is native (elsewhere it is slower).
    assert dtypes[True] == (torch.bfloat16 if native else torch.float32)
    assert dtypes[False] == torch.float32


def _assert_same_training_state(a, b):
    assert a["nimg"] == b["nimg"] and a["step"] == b["step"]
    for key in ("G", "D", "G_ema"):
        for name, t in a[key].items():
            assert torch.equal(t, b[key][name]), f"{key}.{name} differs after resume"
    for key in ("opt_G", "opt_D"):
        for pid, st in a[key]["state"].items():
            for field, value in st.items():
                assert torch.equal(value, b[key]["state"][pid][field]), f"{key}.{pid}.{field}"
    for key in ("gen_noise", "gen_aug"):
        assert torch.equal(a[key], b[key])
    assert torch.equal(a["sampler"]["perm"], b["sampler"]["perm"])
    assert a["sampler"]["pos"] == b["sampler"]["pos"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


def test_sigint_checkpoints_mid_run_and_resume_matches(tmp_path, tiny_faces, monkeypatch):
    import signal

    from deepfake_lab.training.gan import GanTrainer
    from interrupts import signal_at_step

    straight = _train(tmp_path, tiny_faces, "straight", 0.024, "fastgan")
    with signal_at_step(monkeypatch, GanTrainer, 2, signal.SIGINT):  # Ctrl-C after step 2
        stopped = _train(tmp_path, tiny_faces, "sig", 0.024, "fastgan")
    assert stopped.status == "interrupted" and stopped.signal == signal.SIGINT
    assert stopped.nimg == 8 and load_checkpoint(stopped.checkpoint)["nimg"] == 8
    assert "SIGINT received" in (stopped.run_dir / "log.txt").read_text()
    resumed = _train(tmp_path, tiny_faces, "sig", 0.024, "fastgan", resume="auto")
    assert resumed.status == "done" and resumed.run_dir == stopped.run_dir
    _assert_same_training_state(
        load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    )


def test_resume_from_an_older_checkpoint_sets_later_work_aside(tmp_path, tiny_faces):
    extra = ["schedule.checkpoint_kimg=0.008", "schedule.keep_checkpoints=1"]
    first = _train(tmp_path, tiny_faces, "old", 0.024, extra=extra)
    ckpts = first.run_dir / "checkpoints"
    assert list_checkpoints(ckpts) == [ckpts / "ckpt-0000000024.pt"]  # 8 and 16 were pruned
    # Bring back the 8-image checkpoint (a twin run is identical) and resume from it.
    twin = _train(tmp_path, tiny_faces, "twin", 0.008, extra=extra)
    older = ckpts / "ckpt-0000000008.pt"
    older.write_bytes(twin.checkpoint.read_bytes())
    res = _train(tmp_path, tiny_faces, "old", 0.016, resume=str(older), extra=extra)
    assert res.run_dir == first.run_dir and res.nimg == 16
    assert list_checkpoints(ckpts) == [ckpts / "ckpt-0000000016.pt"]
    assert (ckpts / "abandoned" / "ckpt-0000000024.pt").is_file()  # kept, not deleted
    assert (first.run_dir / "samples" / "abandoned" / "grid-0000000024.png").is_file()


def test_resume_auto_falls_back_past_a_truncated_newest_checkpoint(tmp_path, tiny_faces):
    """A crash mid-write leaves a cut newest checkpoint: `--resume auto` says so, continues
    from the previous good one and ends where an uninterrupted run ends."""
    import io

    from rich.console import Console

    extra = ["schedule.checkpoint_kimg=0.008", "schedule.keep_checkpoints=3"]
    straight = _train(tmp_path, tiny_faces, "straight", 0.024, extra=extra)
    cut = _train(tmp_path, tiny_faces, "cut", 0.016, extra=extra)
    newest = cut.run_dir / "checkpoints" / "ckpt-0000000016.pt"
    newest.write_bytes(newest.read_bytes()[:5000])
    buf = io.StringIO()
    res = train_gan(
        tiny_faces,
        overrides=TINY + extra,
        arch="dcgan",
        kimg=0.024,
        out=tmp_path / "runs",
        name="cut",
        resume="auto",
        progress=False,
        tensorboard=False,
        console=Console(file=buf, width=300),
    )
    text = buf.getvalue()
    assert "ckpt-0000000016.pt" in text and "resuming from" in text
    assert "ckpt-0000000008.pt" in text.split("resuming from")[1]
    assert res.run_dir == cut.run_dir and res.nimg == 24
    assert (cut.run_dir / "checkpoints" / "abandoned" / "ckpt-0000000016.pt").is_file()
    _assert_same_training_state(
        load_checkpoint(straight.checkpoint), load_checkpoint(res.checkpoint)
    )


def test_tensorboard_events_are_written(tmp_path, tiny_faces):
    res = train_gan(
        tiny_faces,
        overrides=TINY,
        arch="dcgan",
        kimg=0.008,
        out=tmp_path / "runs",
        name="tb",
        progress=False,
        tensorboard=True,
    )
    events = list(res.run_dir.glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(res.run_dir))
    acc.Reload()
    assert {"Loss/G", "Loss/D", "D/real", "Speed/images_per_sec"} <= set(acc.Tags()["scalars"])
    assert "samples" in acc.Tags()["images"]


def test_resume_with_changed_data_is_refused(tmp_path, tiny_faces):
    _train(tmp_path, tiny_faces, "data", 0.008)
    (tiny_faces / "000.png").rename(tmp_path / "moved.png")
    with pytest.raises(UserError, match="trained on 24 images but the data now has 23"):
        _train(tmp_path, tiny_faces, "data", 0.016, resume="auto")


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
    # The log says which numerics the run trains in (bf16 only where the CPU has it natively).
    device = resolve_device("auto")
    numerics = "bfloat16 autocast" if native_bf16(device) else "fp32"
    assert f"device {device}, {numerics}" in (run / "log.txt").read_text()
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


def test_cpu_budget_stops_with_a_checkpoint(tmp_path, tiny_faces):
    res = _train(tmp_path, tiny_faces, "cpu", 10.0, extra=["train.max_cpu_minutes=0.00001"])
    assert res.status == "cpu limit" and res.nimg == 4 and res.checkpoint is not None
    log = (res.run_dir / "log.txt").read_text()
    assert "max_cpu_minutes reached" in log and "CPU s" in log


def test_metrics_during_training_log_and_keep_the_best(tmp_path, tiny_faces, monkeypatch):
    import json as _json

    from deepfake_lab.metrics.features import FEATURE_EXTRACTORS
    from fakes import TinyFeatures

    monkeypatch.setitem(FEATURE_EXTRACTORS._entries, "tiny-test", TinyFeatures)
    extra = [
        "metrics.every_kimg=0.008",
        "metrics.features=tiny-test",
        "metrics.num=8",
        "metrics.metrics=fid,kid,pr",
        f"metrics.cache_dir={tmp_path / 'cache'}",
    ]
    with_metrics = _train(tmp_path, tiny_faces, "m", 0.024, extra=extra)
    evals = [
        r
        for r in map(_json.loads, (with_metrics.run_dir / "metrics.jsonl").open())
        if r.get("kind") == "eval"
    ]
    assert [r["kimg"] for r in evals] == [0.008, 0.016, 0.024]
    assert all(
        r["label"] == "FD-TINY" and "Metrics/FD-TINY" in r and "Metrics/FID" not in r for r in evals
    )
    best = _json.loads((with_metrics.run_dir / "checkpoints" / "best.json").read_text())
    values = [r["Metrics/FD-TINY"] for r in evals]
    assert best["value"] == min(values) and best["name"] == "FD-TINY"
    best_ckpt = load_checkpoint(with_metrics.run_dir / "checkpoints" / "best.pt")
    assert best_ckpt["nimg"] == round(best["kimg"] * 1000)
    # Measuring must not change training: same weights as a run without metrics.
    plain = _train(tmp_path, tiny_faces, "plain", 0.024)
    a, b = load_checkpoint(with_metrics.checkpoint), load_checkpoint(plain.checkpoint)
    assert all(torch.equal(a["G"][k], b["G"][k]) for k in a["G"])


def test_metrics_without_a_reference_fail_before_any_folder(tmp_path, tiny_faces):
    with pytest.raises(UserError, match="metrics reference folder not found"):
        _train(
            tmp_path,
            tiny_faces,
            "noref",
            0.008,
            extra=["metrics.every_kimg=0.008", f"metrics.ref={tmp_path / 'nope'}"],
        )
    assert not (tmp_path / "runs").exists()
