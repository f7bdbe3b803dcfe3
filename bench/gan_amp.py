"""Benchmark: the default GAN training step in fp32 against bfloat16 autocast, per architecture.

Both trainers run in this process on the same faces, interleaved after a warm-up; we report
the median step time of each and the ratio fp32/bf16 (above 1: autocast is faster). The
training loop uses autocast on CPUs that compute bfloat16 natively (AVX512-BF16 or AMX,
``devices.native_bf16``); elsewhere it stays in fp32, and this script says which this CPU is.

    python bench/gan_amp.py [--archs dcgan,fastgan,vae,stylegan2] [--size 64] [--batch 32]
        [--threads 1] [--repeats 5] [--data DIR]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from deepfake_lab.config import build_config
from deepfake_lab.data.dataset import FaceDataset
from deepfake_lab.devices import native_bf16
from deepfake_lab.training.gan import GanTrainer
from deepfake_lab.training.gan_config import GanConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="dcgan,fastgan,vae,stylegan2")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds of --steps steps")
    ap.add_argument("--steps", type=int, default=4, help="steps per round")
    ap.add_argument("--data", default=None, help="image folder; default: random images")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.data:
        ds = FaceDataset.from_folder(args.data, args.size)
    else:
        images = torch.randint(0, 256, (256, 3, args.size, args.size), dtype=torch.uint8)
        ds = FaceDataset(images=images, paths=[])
    cpu = torch.device("cpu")
    print(
        f"{args.size}px batch {args.batch}, torch {torch.__version__}, {args.threads} thread(s); "
        f"this CPU computes bfloat16 natively: {native_bf16(cpu)}"
    )
    for arch in args.archs.split(","):
        base = [f"model.arch={arch}", f"model.size={args.size}", f"train.batch={args.batch}"]
        trainers = {}
        for amp in (False, True):
            cfg = build_config(GanConfig, None, [*base, "train.device=cpu", f"train.amp={amp}"])
            t = GanTrainer(cfg, ds, cpu)
            t.use_amp = amp  # measured whatever this CPU would choose by default
            trainers["bf16" if amp else "fp32"] = t
        for t in trainers.values():  # warm-up
            for _ in range(2):
                t.train_step()
        times: dict[str, list[float]] = {k: [] for k in trainers}
        for _ in range(args.repeats):  # interleaved: drifts in machine speed hit both alike
            for k, t in trainers.items():
                start = time.perf_counter()
                for _ in range(args.steps):
                    t.train_step()
                times[k].append((time.perf_counter() - start) / args.steps)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"{arch:>10}: fp32 {med['fp32'] * 1e3:7.1f} ms/step, bf16 autocast "
            f"{med['bf16'] * 1e3:7.1f} ms/step, ratio fp32/bf16 {med['fp32'] / med['bf16']:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
