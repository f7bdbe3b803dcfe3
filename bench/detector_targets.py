"""Benchmark: detectors against our own GANs' samples, held-out real faces, degradations,
cross-architecture transfer, and inference throughput.

    python bench/detector_targets.py --real ../shared/data/ffhq-128 \
        --gan fastgan=runs/arch-compare/00001-fastgan64 --gan dcgan=runs/arch-compare/00000-dcgan64

For each GAN: `--num` samples are generated; the reals are split once (seeded, by file) into
train and a held-out test part that no detector ever sees in training; every detector in
`--models` is trained on train-reals vs train-fakes of one GAN, then measured on held-out
reals vs held-out fakes of the same GAN, after JPEG q75 and a 0.5x resize, and against the
other GAN's held-out fakes (cross-architecture). ``--mix`` also trains on the union of
every GAN's training fakes. ``--unseen-real``/``--unseen-fake`` add faces from generators
this project does not have (``bench/unseen_faces.py`` makes them from the shared
FaceForensics++ and SadTalker clips): ROC-AUC of unseen real vs each unseen fake set, and
the share of each called fake / real at the detector's calibrated threshold.
Throughput: images/s at 128 px, batch 64, of our inference path (the fused channels-last
copy that ``detect`` and ``eval detector`` use) against a plain eager forward of the same
network, in this process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from deepfake_lab.data.detection import DetectionSample, collect_samples, split_samples
from deepfake_lab.evaluation.detector_eval import evaluate_detector
from deepfake_lab.generate import generate_images
from deepfake_lab.models.detectors import build_detector
from deepfake_lab.provenance.marking import DETECTOR_DATA
from deepfake_lab.training.detector_launch import train_detector


def write_manifest(path: Path, samples: list[DetectionSample]) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for s in samples:
            label = "fake" if s.label else "real"
            fh.write(
                json.dumps({"path": str(s.path.resolve()), "label": label, "source": s.source})
                + "\n"
            )
    return path


def images(folder: str | Path) -> list[Path]:
    """The images of a folder made by ``data prepare`` (its ``images/``) or a plain one."""
    root = Path(folder) / "images" if (Path(folder) / "images").is_dir() else Path(folder)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})


def throughput(models: list[str], size: int = 128, batch: int = 64, repeats: int = 7) -> None:
    from deepfake_lab.models.detectors.loading import LoadedDetector

    x = torch.rand(batch, 3, size, size) * 2 - 1
    print(
        f"\nthroughput at {size}px, batch {batch}, {torch.get_num_threads()} threads "
        "(images/s, median of interleaved runs)"
    )
    for name in models:
        torch.manual_seed(0)
        net = build_detector(name, size=size).eval()
        det = LoadedDetector(net)

        def plain(net=net):
            with torch.no_grad():
                net(x)

        def ours(det=det):
            det.logits(x)

        for f in (plain, ours):
            f()
        t = {"plain": [], "ours": []}
        for _ in range(repeats):
            for k, f in (("plain", plain), ("ours", ours)):
                s = time.perf_counter()
                f()
                t[k].append(time.perf_counter() - s)
        p, o = (batch / statistics.median(t[k]) for k in ("plain", "ours"))
        print(f"  {name:>12}: ours {o:8.1f}  plain eager {p:8.1f}  ratio {o / p:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real")
    ap.add_argument("--gan", action="append", default=[], help="name=RUN (two for cross)")
    ap.add_argument("--num", type=int, default=400)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--models", default="npr,resnet,spectrum")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--out", default="runs/detector-targets")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--only-throughput", action="store_true")
    ap.add_argument("--mix", action="store_true", help="also train on all GANs' fakes")
    ap.add_argument("--unseen-real", help="real faces matching the unseen fakes")
    ap.add_argument("--unseen-fake", action="append", default=[], help="name=DIR")
    args = ap.parse_args()
    if args.only_throughput:
        throughput(args.models.split(","))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gans = dict(g.split("=", 1) for g in args.gan)
    reals = collect_samples([Path(args.real)], [Path(args.real)])  # labels fixed below
    reals = [s for s in reals if s.label == 0]
    real_split = split_samples(reals, val=0.25, seed=0)  # "val" here = held-out test reals
    fakes: dict[str, dict[str, list[DetectionSample]]] = {}
    for name, run in gans.items():
        folder = out / f"samples-{name}"
        if not (folder / "generate.json").exists():
            # Unmarked: detectors must learn the generator's artefacts, not our watermark.
            unmarked = DETECTOR_DATA
            generate_images(run, args.num, folder, seed=10_000, provenance=unmarked)
        fs = [DetectionSample(p, 1, name) for p in sorted(folder.glob("seed*.png"))]
        split = split_samples(fs, val=0.25, seed=0)
        fakes[name] = {"train": split["train"], "test": split["val"]}
    unseen: dict[str, Path] = {}
    if args.unseen_real:
        u_real = [DetectionSample(p, 0, "unseen-real") for p in images(args.unseen_real)]
        for item in args.unseen_fake:
            name, folder = item.split("=", 1)
            u_fake = [DetectionSample(p, 1, name) for p in images(folder)]
            unseen[name] = write_manifest(out / f"unseen-{name}.jsonl", u_real + u_fake)
    train_sets = {g: fakes[g]["train"] for g in gans}
    if args.mix:
        train_sets["mix"] = [s for g in gans for s in fakes[g]["train"]]
    results = []
    for gan, train_fakes in train_sets.items():
        train_m = write_manifest(out / f"train-{gan}.jsonl", real_split["train"] + train_fakes)
        tests = {
            other: write_manifest(
                out / f"test-{other}.jsonl", real_split["val"] + fakes[other]["test"]
            )
            for other in gans
        }
        for model in args.models.split(","):
            res = train_detector(
                manifest=train_m,
                model=model,
                size=args.size,
                epochs=args.epochs,
                out=out / "runs",
                name=f"{model}-{gan}",
                overrides=list(args.overrides),
                progress=False,
                tensorboard=False,
            )
            row = {"train_on": gan, "model": model, "run": str(res.run_dir)}
            for other, manifest in tests.items():
                r = evaluate_detector(
                    res.run_dir, manifest=manifest, n_boot=500, robustness=(other == gan)
                )
                lo, hi = r["intervals"]["roc_auc"]
                row[f"auc_{other}"] = round(r["roc_auc"], 4)
                row[f"auc_{other}_ci"] = [round(lo, 4), round(hi, 4)]
                if other == gan:
                    row["accuracy"] = round(r["accuracy"], 4)
                    row["auc_jpeg75"] = round(r["robustness"]["jpeg75"]["roc_auc"], 4)
                    row["auc_resize0.5"] = round(r["robustness"]["resize0.5"]["roc_auc"], 4)
            for name, manifest in unseen.items():
                r = evaluate_detector(res.run_dir, manifest=manifest, n_boot=500, robustness=False)
                c = r["confusion"]
                row[f"unseen_{name}"] = {
                    "auc": round(r["roc_auc"], 4),
                    "auc_ci": [round(v, 4) for v in r["intervals"]["roc_auc"]],
                    "called_fake": round(c["tp"] / max(1, c["tp"] + c["fn"]), 4),
                    "real_called_fake": round(c["fp"] / max(1, c["fp"] + c["tn"]), 4),
                }
            results.append(row)
            print(json.dumps(row), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(
        f"\n{len(real_split['train'])} train reals, {len(real_split['val'])} held-out reals, "
        f"{args.num} samples per GAN (75/25 split), {args.size}px, {args.epochs} epochs"
    )
    if not args.skip_throughput:
        throughput(args.models.split(","))


if __name__ == "__main__":
    main()
