"""Crash trials: a GAN run killed with SIGKILL at random points, checkpoint writes included,
then resumed with ``--resume auto``, ends with the very weights of a run never interrupted.

Each trial starts the run in a child process (the ``train gan`` API, as the CLI calls it)
and kills it with SIGKILL, one of these ways:

* ``delay``: from outside, a random time after training started (or, for some, during
  start-up, before any checkpoint exists);
* ``temp-file``: from outside, when the parent sees a checkpoint's temp file
  (``.ckpt-*.tmp``) appear; the child writes checkpoints in two halves a moment apart, so
  the kill lands in the middle of a write;
* ``self``: the child kills itself at an exact point of its k-th checkpoint write: half of
  the temp file written (``mid-write``), the temp file complete but not renamed
  (``before-rename``), renamed but the folder not flushed (``after-rename``), or saved but
  the older checkpoints not pruned yet (``before-prune``).

Some trials are killed a second time while resuming. The last resume runs here, to the end,
and its final checkpoint must equal the uninterrupted run's bit for bit (models, EMA,
optimizers, generators, sampler, RNG). ``test_crash_trials_fast`` runs 2 trials (both
killed inside a checkpoint write); ``test_crash_trials_many`` (``slow``) runs 20, about a
minute on two CPU cores.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_lab.runs.checkpoint import list_checkpoints, load_checkpoint
from deepfake_lab.training.launch import train_gan
from tiny_configs import GAN_TINY

# 16 steps of 4 images, a checkpoint every 2 steps (8 checkpoints), 2 kept: pruning runs.
KIMG = 0.064
OVERRIDES = [
    *GAN_TINY,
    "loss.r1_interval=2",
    "schedule.checkpoint_kimg=0.008",
    "schedule.keep_checkpoints=2",
    "train.threads=1",
]
N_CHECKPOINTS = 8
PHASES = ("mid-write", "before-rename", "after-rename", "before-prune")
# No trial waits longer than this for a child (a safety stop for a hung child, not a test of
# speed: a child takes a few seconds).
CHILD_TIMEOUT_S = 300

# The child: the train gan API with the trial's instrumentation (see the module docstring).
CHILD = r"""
import json, os, re, signal, sys, time
plan = json.loads(sys.argv[1])
import deepfake_lab.io as dio
import deepfake_lab.runs.checkpoint as ckpt
import deepfake_lab.training.gan_loop as loop
from deepfake_lab.training.launch import train_gan

CKPT = re.compile(r"^ckpt-\d+\.pt$")
count = [0]  # checkpoint writes started

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def at(phase):
    return plan.get("phase") == phase and count[0] == plan.get("at_ckpt")

real_write = ckpt.atomic_write
def atomic_write(path, write, sync_folder=False):
    count[0] += 1
    pause = plan.get("slow_write")
    if not (pause or at("mid-write")):
        return real_write(path, write, sync_folder)
    def halves(fh):
        import io
        buf = io.BytesIO()
        write(buf)
        data = buf.getvalue()
        fh.write(data[: len(data) // 2])
        fh.flush()
        if at("mid-write"):
            die()
        time.sleep(pause)
        fh.write(data[len(data) // 2 :])
    return real_write(path, halves, sync_folder)
ckpt.atomic_write = atomic_write

real_replace = dio.os.replace
def replace(src, dst, *args, **kwargs):
    if CKPT.match(os.path.basename(dst)) and at("before-rename"):
        die()
    return real_replace(src, dst, *args, **kwargs)
dio.os.replace = replace  # this child's os module: no one else is affected

real_fsync_folder = dio.fsync_folder
def fsync_folder(folder):
    if os.path.basename(folder) == "checkpoints" and at("after-rename"):
        die()
    return real_fsync_folder(folder)
dio.fsync_folder = fsync_folder

real_prune = loop.prune_checkpoints
def prune(folder, keep):
    if at("before-prune"):
        die()
    return real_prune(folder, keep)
loop.prune_checkpoints = prune

res = train_gan(plan["data"], overrides=plan["overrides"], arch="dcgan", kimg=plan["kimg"],
                out=plan["out"], name="crash", resume="auto", progress=False,
                tensorboard=False)
print(json.dumps({"status": res.status, "nimg": res.nimg}))
"""


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 smooth 16 px images (as the shared ``tiny_faces``, made once for the module)."""
    folder = tmp_path_factory.mktemp("crash-faces")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:16, 0:16]
    for i in range(24):
        cx, cy = rng.uniform(4, 12, size=2)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / rng.uniform(6, 20))[..., None]
        img = blob * rng.uniform(0, 255, 3) + (1 - blob) * rng.uniform(0, 255, 3)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def reference(faces: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The final checkpoint of the run never interrupted."""
    torch.set_num_threads(1)
    res = _train(faces, tmp_path_factory.mktemp("crash-reference"))
    assert res.status == "done"
    return load_checkpoint(res.checkpoint)


def _train(faces: Path, out: Path):
    return train_gan(
        faces,
        overrides=OVERRIDES,
        arch="dcgan",
        kimg=KIMG,
        out=out,
        name="crash",
        resume="auto",
        progress=False,
        tensorboard=False,
    )


def _plan(trial: int, seed: int) -> list[dict]:
    """The kills of one trial: its first run's, and maybe one more while resuming."""
    rng = random.Random(seed * 1000 + trial)
    kind = ("self", "temp-file", "delay")[trial % 3]
    kills = [_kill(kind, rng, trial)]
    if rng.random() < 0.3:  # killed again while resuming, from outside
        kills.append({"kind": "delay", "after_start": True, "delay_s": rng.uniform(0, 0.3)})
    return kills


def _kill(kind: str, rng: random.Random, trial: int) -> dict:
    if kind == "self":
        phase = PHASES[(trial // 3) % len(PHASES)]
        return {"kind": kind, "phase": phase, "at_ckpt": rng.randint(1, N_CHECKPOINTS)}
    if kind == "temp-file":
        return {"kind": kind, "at_tmp": rng.randint(1, N_CHECKPOINTS), "slow_write": 0.3}
    if (trial // 3) % 3 == 0:  # during start-up (imports, run folder), timed from the spawn
        return {"kind": kind, "after_start": False, "delay_s": rng.uniform(0.5, 2.5)}
    # Training itself takes a few tenths of a second.
    return {"kind": kind, "after_start": True, "delay_s": rng.uniform(0, 0.3)}


def _child(faces: Path, out: Path, kill: dict) -> tuple[str, float]:
    """Run one child under ``kill``; returns how it ended and how long it ran."""
    plan = {"data": str(faces), "out": str(out), "overrides": OVERRIDES, "kimg": KIMG}
    plan |= {k: kill[k] for k in ("phase", "at_ckpt", "slow_write") if k in kill}
    logged = _log_bytes(out)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(plan)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        if kill["kind"] == "delay":
            if kill["after_start"]:  # training (re)started: the run's log has a new line
                _wait_for(proc, lambda: _log_bytes(out) > logged)
            _sleep_unless_done(proc, kill["delay_s"])
            _sigkill(proc)
        elif kill["kind"] == "temp-file":
            seen: set[str] = set()

            def kth_temp_file() -> bool:
                seen.update(p.name for p in out.glob("*-crash/checkpoints/.ckpt-*.tmp"))
                return len(seen) >= kill["at_tmp"]

            _wait_for(proc, kth_temp_file)
            _sigkill(proc)
        _, stderr = proc.communicate(timeout=CHILD_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            _sigkill(proc)
            proc.communicate()
    ran = time.monotonic() - started
    if proc.returncode == -signal.SIGKILL:
        return "killed", ran
    assert proc.returncode == 0, stderr.decode(errors="replace")[-2000:]
    return "finished", ran  # the kill came after the end (a late delay)


def _log_bytes(out: Path) -> int:
    """Bytes in the log files of the trial's runs: each (re)start adds a line."""
    return sum(p.stat().st_size for p in out.glob("*-crash/log.txt"))


def _wait_for(proc: subprocess.Popen, ready) -> None:
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)


def _sleep_unless_done(proc: subprocess.Popen, seconds: float) -> None:
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass


def _sigkill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def _assert_same_state(a: dict, b: dict, trial: str) -> None:
    assert (a["nimg"], a["step"]) == (b["nimg"], b["step"]), trial
    for key in ("G", "D", "G_ema"):
        for name, t in a[key].items():
            assert torch.equal(t, b[key][name]), f"{trial}: {key}.{name} differs"
    for key in ("opt_G", "opt_D"):
        for pid, st in a[key]["state"].items():
            for field, value in st.items():
                other = b[key]["state"][pid][field]
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(other)), (
                    f"{trial}: {key}.{pid}.{field} differs"
                )
    for key in ("gen_noise", "gen_aug"):
        assert torch.equal(a[key], b[key]), f"{trial}: {key} differs"
    assert torch.equal(a["sampler"]["perm"], b["sampler"]["perm"]), trial
    assert a["sampler"]["pos"] == b["sampler"]["pos"], trial
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"]), trial


def run_trials(faces: Path, reference: dict, root: Path, n: int, seed: int) -> list[dict]:
    """``n`` trials; each ends with a resume here that must match ``reference``."""
    log = []
    for trial in range(n):
        out = root / f"trial-{trial:02d}"
        outcomes = []
        for kill in _plan(trial, seed):
            outcome, ran = _child(faces, out, kill)
            outcomes.append({**kill, "outcome": outcome, "ran_s": round(ran, 2)})
        res = _train(faces, out)
        name = f"trial {trial} {outcomes}"
        assert res.status == "done" and res.nimg == round(KIMG * 1000), name
        final = list_checkpoints(res.run_dir / "checkpoints")
        assert final and len(final) <= 2, name  # pruned to keep_checkpoints
        _assert_same_state(reference, load_checkpoint(final[-1]), name)
        log.append({"trial": trial, "kills": outcomes})
    return log


def test_crash_trials_fast(faces: Path, reference: dict, tmp_path: Path) -> None:
    # Two trials, both killed inside a checkpoint write: the child itself half-way through
    # the temp file, and from outside while a temp file exists.
    log = run_trials(faces, reference, tmp_path, n=2, seed=0)
    assert [t["kills"][0]["kind"] for t in log] == ["self", "temp-file"]
    assert log[0]["kills"][0]["phase"] == "mid-write"
    assert all(t["kills"][0]["outcome"] == "killed" for t in log)


@pytest.mark.slow
def test_crash_trials_many(faces: Path, reference: dict, tmp_path: Path) -> None:
    log = run_trials(faces, reference, tmp_path, n=20, seed=1)
    killed = [k for t in log for k in t["kills"] if k["outcome"] == "killed"]
    assert len(killed) >= 18  # only a late delay may miss its run
    assert {k["phase"] for k in killed if k["kind"] == "self"} == set(PHASES)
    assert any(not k.get("after_start", True) for k in killed)  # some during start-up
    print(json.dumps(log))
