"""Benchmark: GAN architectures at equal CPU time on a few hundred faces.

Trains each architecture for the same CPU-time budget (``train.max_cpu_minutes``: the
training process's own CPU seconds, so the budget stays equal however many runs share the
machine and whatever else runs beside them), all at once, one CPU thread each, at a low
priority, then measures FD-R56 (Frechet distance in the feature space of a CIFAR-10
ResNet-56; NOT Inception FID) between 400 G_ema samples and the real images. Lower is better.
``--resistance`` adds ``eval resistance`` per architecture (ROC-AUC of a fresh ``npr``
detector on the samples vs held-out reals; 0.5 = indistinguishable).

    python bench/arch_compare.py --data ../shared/data/ffhq-128 \
        --weights ../shared/models/resnet56-4bfd9763.th --cpu-minutes 30 --size 64

``--archs`` takes architectures and variants of them: ``ARCH+progressive`` (progressive
resolution from 8 px, ``--progressive-kimg`` a phase) and ``vae+perceptual`` (the VAE with the
ResNet-56 perceptual loss of ``--weights``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from deepfake_lab.data.dataset import FaceDataset
from deepfake_lab.metrics.features import FEATURE_EXTRACTORS
from deepfake_lab.metrics.frechet import FeatureStatsAccumulator, frechet_distance
from deepfake_lab.models.generators.loading import load_generator
from deepfake_lab.models.latents import latents_for_seeds
from deepfake_lab.training.report import training_records


def features_stats(extractor, batches):
    acc = FeatureStatsAccumulator()
    with torch.no_grad():
        for x in batches:
            acc.update(extractor.features(x).double().numpy())
    return acc.stats()


def resistance_auc(run: Path, args) -> float:
    """ROC-AUC of a fresh npr detector on the run's samples vs held-out reals."""
    out = Path(args.out) / "resistance"
    js = out / f"{run.name}.json"
    cmd = [sys.executable, "-m", "deepfake_lab", "eval", "resistance", str(run), "--real"]
    cmd += [args.data, "--num", "400", "--epochs", str(args.resistance_epochs)]
    cmd += ["--out", str(out), "--name", run.name, "--json", str(js), "--no-progress"]
    subprocess.run(cmd, check=True)
    return json.loads(js.read_text())["roc_auc"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--weights", required=True, help="resnet56-4bfd9763.th")
    ap.add_argument("--archs", default="dcgan,fastgan")
    ap.add_argument("--cpu-minutes", type=float, default=30.0, help="CPU minutes per arch")
    ap.add_argument("--nice", type=int, default=10, help="niceness of the training processes")
    ap.add_argument("--resistance", action="store_true", help="also run eval resistance")
    ap.add_argument("--resistance-epochs", type=int, default=10)
    ap.add_argument(
        "--eval-only", action="store_true", help="score the runs already in --out, train nothing"
    )
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out", default="runs/arch-compare")
    ap.add_argument("--num", type=int, default=400, help="generated images for FD-R56")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--progressive-kimg", type=float, default=2.0)
    args = ap.parse_args()
    variants = {
        "progressive": [
            "train.progressive=true",
            "train.progressive_start=8",
            f"train.progressive_kimg={args.progressive_kimg}",
        ],
        "perceptual": [
            "loss.perceptual.net=resnet56-cifar",
            f"loss.perceptual.weights={args.weights}",
        ],
    }

    procs = {}
    for name in args.archs.split(","):
        arch, *extras = name.split("+")
        label = name.replace("+", "-")
        cmd = [
            sys.executable,
            "-m",
            "deepfake_lab",
            "train",
            "gan",
            "--data",
            args.data,
            "--arch",
            arch,
            "--size",
            str(args.size),
            "--batch",
            str(args.batch),
            "--kimg",
            "100000",
            "--out",
            args.out,
            "--name",
            f"{label}{args.size}",
            "--no-progress",
            "--set",
            f"train.max_cpu_minutes={args.cpu_minutes}",
            "--set",
            "train.threads=1",
            "--set",
            "schedule.checkpoint_kimg=5",
        ]
        for o in args.overrides + [o for e in extras for o in variants[e]]:
            cmd += ["--set", o]
        if args.eval_only:
            procs[label] = None
            continue
        procs[label] = subprocess.Popen(cmd, preexec_fn=lambda: os.nice(args.nice))
    for arch, p in procs.items():
        if p is not None and p.wait() != 0:
            sys.exit(f"training {arch} failed with exit code {p.returncode}")

    torch.set_num_threads(2)
    extractor = FEATURE_EXTRACTORS.build("resnet56-cifar", weights=Path(args.weights))
    reals = FaceDataset.from_folder(args.data, args.size)
    idx = torch.arange(len(reals))
    mu_r, sig_r = features_stats(extractor, (reals.batch(i) for i in idx.split(100)))
    rows = []
    for arch in procs:
        run = sorted(Path(args.out).glob(f"*-{arch}{args.size}"))[-1]
        g = load_generator(run)
        z = latents_for_seeds(list(range(args.num)), g.model.z_dim)
        with torch.no_grad():
            mu, sig = features_stats(extractor, (g.model(zz).clamp(-1, 1) for zz in z.split(100)))
        recs = training_records(run)
        speed = sorted(r["Speed/images_per_sec"] for r in recs)[len(recs) // 2]
        # The loop logs its CPU seconds in its last line; sum over sessions (resumes).
        cpu = sum(map(float, re.findall(r"([0-9.]+) CPU s", (run / "log.txt").read_text())))
        row = {
            "arch": arch,
            "run": str(run),
            "kimg": recs[-1]["kimg"],
            "cpu_minutes": round(cpu / 60, 1),
            "images_per_sec_median": round(speed, 1),
            "fd_r56": round(frechet_distance(mu, sig, mu_r, sig_r), 4),
            "grid": str(sorted((run / "samples").glob("grid-*.png"))[-1]),
        }
        if args.resistance:
            row["resistance_auc"] = resistance_auc(run, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(
        f"{args.cpu_minutes} CPU min per arch, {args.size}px, batch {args.batch}, 1 thread "
        f"each, {len(reals)} real images; FD-R56 on {args.num} G_ema samples vs all reals"
    )
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
