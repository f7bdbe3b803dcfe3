"""Data-parallel training with torchrun (2 CPU processes, gloo): a run with global batch B
ends with the weights a one-process run with batch B reaches, for both trainers, and kill /
resume under torchrun loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from deepfake_lab.runs.checkpoint import list_checkpoints, load_checkpoint
from tiny_configs import GAN_TINY

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available in this build",
)

# The GAN options of every run here: BatchNorm in G and D (dcgan), R1 every other step,
# DiffAugment (all three policies), x-flips and ADA, so that each of the per-sample random
# draws and batch statistics that must agree across ranks takes part. In fp32: bfloat16
# autocast (on by default where a CPU computes it natively) rounds each rank's half batch
# differently from the whole, far beyond the fp32 summation-order tolerance compared here.
GAN_OPTS = [
    *GAN_TINY,
    "train.amp=false",
    "train.batch=8",
    "train.threads=1",
    "loss.r1_gamma=1.0",
    "loss.r1_interval=2",
    "augment.policy=color,translation,cutout",
    "augment.xflip=true",
    "augment.ada_target=0.6",
    "augment.ada_interval=2",
    "augment.ada_kimg=0.1",
    "schedule.checkpoint_kimg=0.032",
]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
if sys.platform == "linux":  # gloo over loopback: a container's hostname may not resolve
    ENV.setdefault("GLOO_SOCKET_IFNAME", "lo")


def _command(nproc: int, *args: str) -> list[str]:
    """``deepfake-lab ARGS`` alone (nproc 1) or under torchrun with ``nproc`` processes."""
    if nproc == 1:
        return [sys.executable, "-m", "deepfake_lab", *args]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return cmd + [f"--nproc_per_node={nproc}", "-m", "deepfake_lab", *args]


def _gan_args(data: Path, out: Path, kimg: float, *extra: str, resume: bool = False):
    args = ["train", "gan", "--data", str(data), "--arch", "dcgan", "--kimg", str(kimg)]
    args += ["--out", str(out), "--name", "g", "--no-progress"]
    args += ["--resume", "auto"] if resume else []
    for o in [*GAN_OPTS, *extra]:
        args += ["--set", o]
    return args


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def _gan(nproc: int, data: Path, out: Path, kimg: float, *extra: str, resume: bool = False):
    return _run(_command(nproc, *_gan_args(data, out, kimg, *extra, resume=resume)))


def _newest(out: Path) -> dict:
    run = sorted(p for p in out.iterdir() if p.is_dir())[-1]
    return load_checkpoint(list_checkpoints(run / "checkpoints")[-1])


def _assert_close(a: dict, b: dict, atol: float = 2e-4) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if a[k].is_floating_point():
            assert torch.allclose(a[k], b[k], atol=atol, rtol=1e-3), k
        else:
            assert torch.equal(a[k], b[k]), k


def test_two_processes_train_the_gan_a_single_process_trains(tmp_path, tiny_faces):
    _gan(1, tiny_faces, tmp_path / "one", 0.064)
    res = _gan(2, tiny_faces, tmp_path / "two", 0.064)
    one, two = _newest(tmp_path / "one"), _newest(tmp_path / "two")
    assert one["nimg"] == two["nimg"] == 64 and two["world_size"] == 2
    for part in ("G", "D", "G_ema"):
        _assert_close(one[part], two[part])
    assert one["ada"]["p"] == pytest.approx(two["ada"]["p"])
    # Rank 0 alone wrote the run folder (one run, one report line).
    assert len([p for p in (tmp_path / "two").iterdir() if p.is_dir()]) == 1
    assert res.stdout.count("run folder:") == 1


def test_kill_and_resume_under_torchrun_lose_nothing(tmp_path, tiny_faces):
    """kill -9 of the whole torchrun group after its first checkpoint, then ``--resume auto``
    with 2 processes: bit-identical to an uninterrupted 2-process run."""
    kimg, extra = 0.192, ["schedule.checkpoint_kimg=0.016"]
    _gan(2, tiny_faces, tmp_path / "straight", kimg, *extra)
    out = tmp_path / "killed"
    cmd = _command(2, *_gan_args(tiny_faces, out, kimg, *extra))
    proc = subprocess.Popen(cmd, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        runs = list(out.glob("*-g/checkpoints/ckpt-*.pt"))
        if len(runs) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    left = _newest(out)["nimg"]
    assert 0 < left < kimg * 1000, "the kill should land mid-run"
    res = _gan(2, tiny_faces, out, kimg, *extra, resume=True)
    assert "resuming from" in res.stdout
    a, b = _newest(tmp_path / "straight"), _newest(out)
    assert a["nimg"] == b["nimg"] == round(kimg * 1000)
    for part in ("G", "D", "G_ema", "opt_G", "opt_D"):
        if part.startswith("opt"):
            a[part], b[part] = _flat_opt(a[part]), _flat_opt(b[part])
        _assert_close(a[part], b[part], atol=0)


def _flat_opt(state: dict) -> dict:
    return {f"{i}.{k}": v for i, s in state["state"].items() for k, v in s.items()}


def test_resuming_with_another_process_count_says_what_changes(tmp_path, tiny_faces):
    out = tmp_path / "runs"
    _gan(2, tiny_faces, out, 0.032)
    _gan(1, tiny_faces, out, 0.064, resume=True)
    run = sorted(p for p in out.iterdir() if p.is_dir())[-1]
    log = (run / "log.txt").read_text()
    assert "written by 2 process(es) and this run has 1" in log
    assert _newest(out)["nimg"] == 64 and _newest(out)["world_size"] == 1


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from detector_toys import make_toy_sets

    return make_toy_sets(tmp_path_factory.mktemp("toy"), n=24)


def _detector(nproc: int, toy: Path, out: Path, *extra: str, real_only: bool = False):
    args = ["train", "detector", "--real", str(toy / "real"), "--size", "16", "--epochs", "2"]
    args += ["--pseudo-fake", "sbi"] if real_only else ["--fake", str(toy / "fake")]
    args += ["--arch", "resnet", "--out", str(out), "--name", "d", "--no-progress"]
    opts = ["train.batch=8", "train.threads=1", "model.kwargs={width: 8, depth: 18}"]
    opts += ["augment.enabled=true", "resample.enabled=true", "train.patience=10", *extra]
    for o in opts:
        args += ["--set", o]
    return _run(_command(nproc, *args))


@pytest.mark.parametrize(
    "real_only, extra",
    [(False, ()), (True, ()), (True, ("seam.weight=1",))],
    ids=["fakes", "sbi-pseudo-fakes", "sbi-with-seam-head"],
)
def test_two_processes_train_the_detector_a_single_process_trains(tmp_path, toy, real_only, extra):
    """ResNet (BatchNorm) with the robustness augmentation and the resampling chain, on
    real vs fake folders and on self-blended pseudo-fakes made on the fly (also with the
    blend-boundary head, which is not part of DDP's model)."""
    _detector(1, toy, tmp_path / "one", *extra, real_only=real_only)
    res = _detector(2, toy, tmp_path / "two", *extra, real_only=real_only)
    one, two = _newest(tmp_path / "one"), _newest(tmp_path / "two")
    assert one["step"] == two["step"] > 0 and two["world_size"] == 2
    _assert_close(one["model"], two["model"])
    assert (one["seam_head"] is None) == (not extra)
    if extra:
        _assert_close(one["seam_head"], two["seam_head"])
    assert res.stdout.count("run folder:") == 1
    run = sorted(p for p in (tmp_path / "two").iterdir() if p.is_dir())[-1]
    assert (run / "calibration.json").exists() and (run / "index.html").exists()


@pytest.mark.slow
def test_detector_killed_under_torchrun_resumes_exactly(tmp_path, toy):
    extra = ("train.epochs=4",)
    _detector(2, toy, tmp_path / "straight", *extra)
    out = tmp_path / "killed"
    args = ["train", "detector", "--real", str(toy / "real"), "--fake", str(toy / "fake")]
    args += ["--size", "16", "--arch", "resnet", "--out", str(out), "--name", "d"]
    opts = ["train.batch=8", "train.threads=1", "model.kwargs={width: 8, depth: 18}"]
    opts += ["augment.enabled=true", "resample.enabled=true", "train.patience=10", *extra]
    for o in opts:
        args += ["--set", o]
    proc = subprocess.Popen(_command(2, *args, "--no-progress"), env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if list(out.glob("*-d/checkpoints/ckpt-*.pt")):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run = sorted(p for p in out.iterdir() if p.is_dir())[-1]
    assert 0 < _newest(out)["step"] < _newest(tmp_path / "straight")["step"]
    _run(_command(2, "train", "detector", "--resume", str(run), "--no-progress"))
    a, b = _newest(tmp_path / "straight"), _newest(out)
    assert a["step"] == b["step"]
    _assert_close(a["model"], b["model"], atol=0)


@pytest.mark.parametrize(
    ("arch", "extra", "exact"),
    [
        ("fastgan", (), True),
        ("vae", (), True),
        ("stylegan2", ("train.progressive=true", "train.progressive_kimg=0.016"), True),
    ],
    ids=["fastgan", "vae", "stylegan2-progressive"],
)
def test_every_gan_architecture_trains_under_torchrun(tmp_path, tiny_faces, arch, extra, exact):
    """FastGAN's noise inputs, random-quadrant reconstruction and spectral norm, the VAE's
    posterior noise, StyleGAN2's noise inputs, style mixing, minibatch std and growing
    resolution: 2 processes train what 1 trains."""
    opts = [o for o in GAN_OPTS if not o.startswith("augment.ada")]

    def train(nproc: int, out: Path):
        args = ["train", "gan", "--data", str(tiny_faces), "--arch", arch, "--kimg", "0.048"]
        args += ["--out", str(out), "--name", "g", "--no-progress"]
        for o in [*opts, *extra]:
            args += ["--set", o]
        _run(_command(nproc, *args))
        return _newest(out)

    two = train(2, tmp_path / "two")
    assert two["nimg"] == 48 and two["world_size"] == 2
    assert all(torch.isfinite(t).all() for t in two["G"].values() if t.is_floating_point())
    if exact:
        one = train(1, tmp_path / "one")
        for part in ("G", "D", "G_ema"):
            _assert_close(one[part], two[part])
