"""Benchmark: GAN training img/s alone and data-parallel under torchrun, same global batch.

Runs ``train gan`` for a fixed wall-clock budget (after a warm-up run that is not counted)
as one process with ``--threads`` threads and as ``--nproc`` torchrun processes with
``threads / nproc`` threads each, with BatchNorm over the global batch (the default,
``train.sync_batchnorm``) and over each process's slice; the three alternate, ``--repeats``
times. Prints the median img/s of each and the ratios to one process (above 1: faster).
Ratios are the only comparable numbers: absolute img/s move with the machine's load.

    python bench/ddp_throughput.py --data ../shared/data/ffhq-128 --size 32 --seconds 40
    python bench/ddp_throughput.py --data DIR --device cuda --size 128   # GPU machines
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(nproc: int, threads: int, args, out: Path, *extra: str) -> float:
    """One timed training run; returns its img/s (from the run's own log line)."""
    cmd = [sys.executable, "-m"]
    if nproc > 1:
        cmd += ["torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m"]
    cmd += ["deepfake_lab", "train", "gan", "--data", args.data, "--arch", args.arch]
    cmd += ["--size", str(args.size), "--batch", str(args.batch), "--kimg", "100000"]
    cmd += ["--out", str(out), "--no-progress", "--device", args.device]
    for o in (f"train.max_minutes={args.seconds / 60}", f"train.threads={threads}",
              "schedule.checkpoint_kimg=100000", "schedule.sample_kimg=100000",
              f"data.max_images={args.max_images}", *extra):  # fmt: skip
        cmd += ["--set", o]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    log = sorted(out.glob("*/log.txt"))[-1].read_text()
    return float(re.findall(r"\(([0-9.]+) img/s\)", log)[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--arch", default="fastgan")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32, help="global batch")
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-images", type=int, default=400)
    args = ap.parse_args()
    per_proc = max(1, args.threads // args.nproc)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run(1, args.threads, argparse.Namespace(**{**vars(args), "seconds": 10}), root / "warm")
        alone, ddp, local = [], [], []
        for i in range(args.repeats):
            alone.append(run(1, args.threads, args, root / f"one{i}"))
            ddp.append(run(args.nproc, per_proc, args, root / f"ddp{i}"))
            local.append(
                run(args.nproc, per_proc, args, root / f"loc{i}", "train.sync_batchnorm=false")
            )
    a, d, lo = (statistics.median(v) for v in (alone, ddp, local))
    print(
        f"{args.arch} {args.size}px, global batch {args.batch}, device {args.device}, "
        f"{args.seconds:.0f} s runs x {args.repeats}"
    )
    print(f"1 process x {args.threads} threads: {a:.1f} img/s (runs {alone})")
    print(f"{args.nproc} processes x {per_proc} threads: {d:.1f} img/s (runs {ddp})")
    print(f"  same, sync_batchnorm=false: {lo:.1f} img/s (runs {local})")
    print(f"data-parallel / alone: {d / a:.2f}; with per-process BatchNorm: {lo / a:.2f}")


if __name__ == "__main__":
    main()
