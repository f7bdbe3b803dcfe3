"""Benchmark: one full DCGAN training step (D + G), ours vs the classic PyTorch example.

Both run in this process on the same data, interleaved, after a warm-up; we report medians,
the ratio ours/reference (aim >= 1.0), and the achieved GFLOP/s as a share of a large fp32
matmul measured in the same run (aim >= 60%).

    python bench/gan_step.py [--size 64] [--batch 64] [--repeats 15] [--threads N]

"Ours" is our trainer's real ``train_step`` with DiffAugment, R1 and EMA switched off, so
that both sides do the same arithmetic; a second line times our default step (DiffAugment,
lazy R1, EMA) for information.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from deepfake_lab.config import build_config
from deepfake_lab.data.dataset import FaceDataset
from deepfake_lab.training.gan import GanTrainer
from deepfake_lab.training.gan_config import GanConfig
from reference_dcgan import reference_discriminator, reference_generator


class Reference:
    """The example's training step, verbatim in structure (BCELoss on sigmoid outputs)."""

    def __init__(self, images: torch.Tensor, batch: int, nz: int = 100):
        self.G, self.D = reference_generator(nz), reference_discriminator()
        self.nz, self.batch = nz, batch
        self.images = images
        self.crit = nn.BCELoss()
        self.optD = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optG = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.i = 0

    def step(self):
        n = self.images.shape[0]
        idx = torch.arange(self.i, self.i + self.batch) % n
        self.i += self.batch
        real = self.images[idx].float().div(127.5).sub(1)
        b = real.size(0)
        self.D.zero_grad()
        label = torch.full((b,), 1.0)
        err_real = self.crit(self.D(real).view(-1), label)
        err_real.backward()
        noise = torch.randn(b, self.nz, 1, 1)
        fake = self.G(noise)
        label.fill_(0.0)
        err_fake = self.crit(self.D(fake.detach()).view(-1), label)
        err_fake.backward()
        self.optD.step()
        self.G.zero_grad()
        label.fill_(1.0)
        err_g = self.crit(self.D(fake).view(-1), label)
        err_g.backward()
        self.optG.step()


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def step_flops(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = torch.randint(0, 256, (512, 3, args.size, args.size), dtype=torch.uint8)
    ds = FaceDataset(images=images, paths=[])
    same_work = [
        "augment.policy=",
        "augment.xflip=false",
        "loss.r1_gamma=0",
        "ema.half_life_kimg=0",
    ]
    base = [
        "model.arch=dcgan",
        f"model.size={args.size}",
        "model.z_dim=100",
        "model.g_channels=64",
        "model.d_channels=64",
        f"train.batch={args.batch}",
        "train.device=cpu",
    ]
    ours = GanTrainer(build_config(GanConfig, None, base + same_work), ds, torch.device("cpu"))
    full = GanTrainer(build_config(GanConfig, None, base), ds, torch.device("cpu"))
    ref = Reference(images, args.batch)
    runners = {"reference": ref.step, "ours": ours.train_step, "ours (defaults)": full.train_step}
    flops = {k: step_flops(f) for k, f in runners.items()}
    # The default step adds lazy R1 every r1_interval steps: count the mean over a cycle.
    k = full.cfg.loss.r1_interval
    flops["ours (defaults)"] = step_flops(lambda: [full.train_step() for _ in range(k)]) // k
    for f in runners.values():  # warm-up
        for _ in range(3):
            f()
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(args.repeats):  # interleaved, so drifts in machine speed hit all alike
        for k, f in runners.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    peak = matmul_gflops()
    print(
        f"dcgan {args.size}px batch {args.batch}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; fp32 matmul peak {peak:.1f} GFLOP/s"
    )
    med = {k: statistics.median(v) for k, v in times.items()}
    for k in runners:
        gf = flops[k] / med[k] / 1e9
        print(
            f"{k:>16}: {args.batch / med[k]:8.1f} img/s  {med[k] * 1e3:7.1f} ms/step  "
            f"{flops[k] / 1e9:6.2f} GFLOP/step  {gf:6.1f} GFLOP/s = {gf / peak:5.1%} of matmul"
        )
    print(f"ratio ours/reference (same work): {med['reference'] / med['ours']:.3f}")
    print(f"ratio ours (defaults)/reference:  {med['reference'] / med['ours (defaults)']:.3f}")


if __name__ == "__main__":
    main()
