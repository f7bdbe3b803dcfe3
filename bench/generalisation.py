"""Benchmark: detectors on generators and manipulations they never saw.

    python bench/unseen_faces.py --out runs/unseen-faces --stride 1
    deepfake-lab data zoo --real ../shared/data/ffhq-128 --out runs/zoo --num 200
    deepfake-lab data zoo --real ../shared/data/ffhq-128 --out runs/zoo64 --num 200 \
        --size 64 --families '*-untrained'
    deepfake-lab data zoo --real ../shared/data/ffhq-128 --out runs/zoo-gan --num 400 \
        --size 64 --families none --gan GAN_RUN
    python bench/generalisation.py --real ../shared/data/ffhq-128 --zoo runs/zoo \
        --zoo64 runs/zoo64 --unseen runs/unseen-faces --detector sbi=RUN --detector meso4:DF \
        --models npr,spectrum --fusion --fusion-member meso4:DF --gan-zoo runs/zoo-gan \
        --size 128 --epochs 10 --per-family 25

Three tables, every number measured here, nothing trained on the sets it is tested on:

1. **Leave one up-sampler out** over the zoo: for each up-sampling family group (``tconv``,
   ``nearest``, ``bilinear``, ``pixelshuffle``; its four families: BatchNorm or not,
   trained or not), a detector is trained on the zoo faces of the other groups (made from
   FFHQ faces 0-199, also the real class) and tested on the left-out group's faces against
   held-out real faces (FFHQ 200-399): ROC-AUC per left-out family, and the mean.
2. **Unseen manipulations**: the FaceForensics++ pair and the SadTalker clip of
   ``../shared/videos`` (faces from ``bench/unseen_faces.py``): frame ROC-AUC of real vs
   manipulated, the share of manipulated frames called fake and of real frames called fake
   at each detector's calibrated threshold, the share of manipulated frames above the real
   frames' 95th percentile (an oracle threshold fitted on the test clip: it says whether any
   threshold could meet "half caught at <= 5% real", and is never used as one), and the
   share of SadTalker frames called fake;
   for each ``--detector`` (trained runs, exports, released weights) and for the zoo
   detector trained on every family. ``--blur-meter`` adds two rows that learn nothing
   (how soft the inside of each face is, and how much softer than the frame's border):
   the ranking a clip gives away to sharpness alone.
3. **Fusion** (with ``--fusion``, in the leave-one-out table): for each left-out group, a
   fusion of the ``--models`` detectors trained without it (plus each ``--fusion-member``,
   e.g. ``meso4:DF``), fitted on zoo faces of the other groups that its members never saw
   and on reals 200-299; it and its members are tested on the left-out families against
   reals 300-399, with the fusion's "uncertain" share of each class.
4. **Own GAN** (with ``--gan-zoo``: ``data zoo --families none --gan RUN --size 64``): a
   detector per ``--models`` (at ``--size``; with ``data.native_size=floor`` when the GAN's
   samples are smaller) trained on 200 of the GAN's samples against reals 0-199 and
   tested on 200 others against reals 200-399, clean and after the sweep's
   ``resize0.5+jpeg75`` (a re-shared photo); and the whole-zoo detector, which never saw
   the GAN, on the same test.
5. **Hygiene on/off** (with ``--zoo64``: untrained zoo families made at 64 px, upscaled to the
   128 px of the reals): the same data trained with the resampling chain and
   ``data.native_size=floor`` against neither, tested on the same families made natively at
   128 px (``--zoo``) and on the unseen sets.

``--set KEY=VALUE`` (repeatable) is passed to every detector the script trains, e.g.
``--set model.tta=flip`` or another architecture's ``model.kwargs``.

Frames of one clip are strongly correlated: treat the clip numbers as one clip's evidence.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from deepfake_lab.augment.robustness import PERTURBATIONS
from deepfake_lab.data.detection import FAKE, REAL, DetectionDataset, DetectionSample
from deepfake_lab.errors import UserError
from deepfake_lab.evaluation.detector_eval import evaluate_detector, score
from deepfake_lab.evaluation.fresh_detector import write_manifest
from deepfake_lab.models.detectors.loading import load_detector
from deepfake_lab.training.detector_launch import train_detector
from deepfake_lab.training.fusion import train_fusion

GROUPS = ("tconv", "nearest", "bilinear", "pixelshuffle")


UNSEEN_SETS = ("ffpp-real", "ffpp-manipulated")


def images(folder: Path) -> list[Path]:
    root = folder / "images" if (folder / "images").is_dir() else folder
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})


def logits_of(det, paths: list[Path], perturb: str | None = None) -> np.ndarray:
    samples = [DetectionSample(p, FAKE, "x") for p in paths]
    # The edit first, then what the detector does to every input (floor, re-encoding).
    data = DetectionDataset.from_samples(
        samples,
        det.size,
        reencode=det.reencode,
        native_floor=det.native_floor,
        perturb=PERTURBATIONS[perturb] if perturb is not None else None,
    )
    return score(det, data, torch.device("cpu"))


def auc(real: np.ndarray, fake: np.ndarray) -> float:
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    return float(roc_auc_score(y, np.r_[real, fake]))


def train(name: str, out: Path, rows, size: int, epochs: int, model: str, extra=()) -> Path:
    """Train ``model`` on ``rows`` (path, label, source); ``extra``: config overrides."""
    with tempfile.TemporaryDirectory() as tmp:
        samples = [DetectionSample(p, label, source) for p, label, source in rows]
        manifest = write_manifest(Path(tmp) / "m.jsonl", samples)
        res = train_detector(
            manifest=manifest,
            model=model,
            size=size,
            epochs=epochs,
            out=out,
            name=name,
            progress=False,
            tensorboard=False,
            # The manifest lists files where they are (the bench's own temporary manifest).
            overrides=["train.patience=100", "data.manifest_outside=true", *extra],
        )
    return res.run_dir


def zoo_rows(
    zoo: Path,
    families: list[str],
    per_family: int,
    seed: int,
    limit: int | None = None,
    exclude: set[Path] = frozenset(),
) -> list:
    """``per_family`` random images of each family (of its first ``limit``, none of
    ``exclude``), labelled fake."""
    rng = np.random.default_rng(seed)
    rows = []
    for fam in families:
        files = [f for f in images(zoo / fam)[:limit] if f not in exclude]
        pick = rng.choice(len(files), size=min(per_family, len(files)), replace=False)
        rows += [(files[int(i)], FAKE, fam) for i in sorted(pick)]
    return rows


def evaluate_rows(source: str | Path, rows: list) -> dict:
    """``evaluate_detector`` on labelled ``(path, label, source)`` rows, no sweep."""
    with tempfile.TemporaryDirectory() as tmp:
        samples = [DetectionSample(p, label, src) for p, label, src in rows]
        manifest = write_manifest(Path(tmp) / "m.jsonl", samples)
        return evaluate_detector(
            source, manifest=manifest, manifest_outside=True, robustness=False, n_boot=0
        )


def unseen_row(name: str, det, unseen: Path) -> dict:
    thr = det.logit_threshold
    real = logits_of(det, images(unseen / "ffpp-real"))
    fake = logits_of(det, images(unseen / "ffpp-manipulated"))
    row = {
        "detector": name,
        "ffpp_auc": auc(real, fake),
        "ffpp_manipulated_called_fake": float(np.mean(fake >= thr)),
        "ffpp_real_called_fake": float(np.mean(real >= thr)),
        # The most any threshold could catch while calling at most 5% of these reals fake:
        # fitted on the test clip itself, so a diagnosis of the ranking's tail, never a
        # threshold to use.
        "ffpp_oracle_manipulated_at_5pct_real": float(np.mean(fake > np.quantile(real, 0.95))),
    }
    if (unseen / "sadtalker").is_dir():
        row["sadtalker_called_fake"] = float(
            np.mean(logits_of(det, images(unseen / "sadtalker")) >= thr)
        )
    return row


def _laplacian_var(path: Path) -> tuple[float, float]:
    """Variance of the grey image's Laplacian over the face's inside (rows 31-78%, columns
    28-72% of an aligned face) and over the border strips (top, left and right 12.5%)."""
    grey = np.asarray(Image.open(path).convert("L"), np.float64)
    lap = cv2.Laplacian(grey, cv2.CV_64F)
    h, w = lap.shape
    inside = lap[round(0.31 * h) : round(0.78 * h), round(0.28 * w) : round(0.72 * w)]
    b = max(1, h // 8)
    border = np.r_[lap[:b].ravel(), lap[:, :b].ravel(), lap[:, -b:].ravel()]
    return float(inside.var()), float(border.var())


def blur_meter_rows(unseen: Path) -> list[dict]:
    """Two scores that learn nothing, as a floor for the clip numbers: how soft the inside
    of the face is (minus the log variance of its Laplacian), and how much softer it is
    than the frame's border (the log of border over inside). No threshold: ranks only."""
    sets = {k: [_laplacian_var(p) for p in images(unseen / k)] for k in UNSEEN_SETS}
    rows = []
    for name, fn in (
        ("blur meter: softness of the face (no training)", lambda i, b: -np.log(i + 1e-9)),
        ("blur meter: face softer than the border (no training)", lambda i, b: np.log(b / i)),
    ):
        s = {k: np.array([fn(i, b) for i, b in v]) for k, v in sets.items()}
        real, fake = s["ffpp-real"], s["ffpp-manipulated"]
        rows.append({
            "detector": name,
            "ffpp_auc": auc(real, fake),
            "ffpp_oracle_manipulated_at_5pct_real": float(np.mean(fake > np.quantile(real, 0.95))),
        })  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, default=Path("../shared/data/ffhq-128"))
    ap.add_argument("--zoo", type=Path, help="data zoo at the detector size, from reals 0-199")
    ap.add_argument("--zoo64", type=Path, help="data zoo at 64 px (hygiene table)")
    ap.add_argument("--unseen", type=Path, help="bench/unseen_faces.py output")
    ap.add_argument("--detector", action="append", default=[], help="NAME=RUN or a model spec")
    ap.add_argument("--models", default="npr", help="detectors trained on the zoo (comma list)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--per-family", type=int, default=40)
    ap.add_argument("--out", type=Path, default=Path("runs/generalisation"))
    ap.add_argument("--fusion", action="store_true", help="add a fusion row to the LOFO table")
    ap.add_argument("--fusion-member", action="append", default=[], help="e.g. meso4:DF")
    ap.add_argument("--gan-zoo", type=Path, help="data zoo --families none --gan RUN --size 64")
    ap.add_argument("--only", default="lofo,unseen,own,hygiene")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="config override for every detector this script trains, e.g. model.tta=flip",
    )
    ap.add_argument(
        "--blur-meter", action="store_true", help="add the two no-training blur rows (unseen)"
    )
    args = ap.parse_args()
    only = set(args.only.split(","))
    reals = images(args.real)
    train_real = [(p, REAL, "real") for p in reals[:200]]
    test_real = reals[200:]
    results: dict = {"lofo": [], "fusion": [], "unseen": [], "own_gan": [], "hygiene": []}
    lofo_runs: dict[tuple[str, str], Path] = {}
    lofo_seen: dict[str, set[Path]] = {}

    if args.zoo and "lofo" in only:
        families = sorted(p.name for p in args.zoo.iterdir() if p.is_dir())
        for model in args.models.split(","):
            for group in GROUPS:
                held = [f for f in families if f.startswith(group + "-")]
                rows = train_real + zoo_rows(
                    args.zoo, [f for f in families if f not in held], args.per_family, 0
                )
                run = train(
                    f"lofo-{model}-{group}",
                    args.out,
                    rows,
                    args.size,
                    args.epochs,
                    model,
                    args.overrides,
                )
                lofo_runs[model, group] = run
                lofo_seen[group] = {r[0] for r in rows}
                det = load_detector(run)
                r = logits_of(det, test_real)
                for fam in held:
                    a = auc(r, logits_of(det, images(args.zoo / fam)))
                    results["lofo"].append({"model": model, "left_out": fam, "roc_auc": a})
                    print(f"LOFO {model} without {group}: {fam} ROC-AUC {a:.4f}", flush=True)
            mean = np.mean([x["roc_auc"] for x in results["lofo"] if x["model"] == model])
            print(f"LOFO {model}: mean ROC-AUC over left-out families {mean:.4f}", flush=True)

    if args.zoo and "lofo" in only and args.fusion:
        families = sorted(p.name for p in args.zoo.iterdir() if p.is_dir())
        fit_real, fusion_test_real = reals[200:300], reals[300:]
        for group in GROUPS:
            held = [f for f in families if f.startswith(group + "-")]
            names = [*args.models.split(","), *args.fusion_member]
            members = [
                *(str(lofo_runs[m, group]) for m in args.models.split(",")),
                *args.fusion_member,
            ]
            fit_rows = [(p, REAL, "real") for p in fit_real] + zoo_rows(
                args.zoo,
                [f for f in families if f not in held],
                args.per_family,
                1,
                exclude=lofo_seen[group],
            )
            with tempfile.TemporaryDirectory() as tmp:
                samples = [DetectionSample(p, label, src) for p, label, src in fit_rows]
                manifest = write_manifest(Path(tmp) / "m.jsonl", samples)
                run = train_fusion(
                    members,
                    manifest=manifest,
                    manifest_outside=True,
                    out=args.out,
                    name=f"lofo-fusion-{group}",
                )
            for fam in held:
                test = [(p, REAL, "real") for p in fusion_test_real]
                test += [(p, FAKE, fam) for p in images(args.zoo / fam)]
                row = {"left_out": fam, "reals": "300-399"}
                for m, src in zip(names, members, strict=True):
                    row[m] = evaluate_rows(src, test)["roc_auc"]
                ev = evaluate_rows(run, test)
                row["fusion"] = ev["roc_auc"]
                row["fusion_uncertain_real"] = ev["uncertain"]["share_real"]
                row["fusion_uncertain_fake"] = ev["uncertain"]["share_fake"]
                row["fusion_accuracy_decided"] = ev["uncertain"]["accuracy_decided"]
                results["fusion"].append(row)
                print("LOFO-FUSION " + json.dumps(row), flush=True)
        for key in [*names, "fusion"]:
            mean = np.mean([r[key] for r in results["fusion"]])
            print(f"LOFO-FUSION {key}: mean ROC-AUC over left-out families {mean:.4f}", flush=True)

    detectors = [d.split("=", 1) if "=" in d else (d, d) for d in args.detector]
    zoo_all: Path | None = None
    if args.zoo and "unseen" in only and args.unseen:
        families = sorted(p.name for p in args.zoo.iterdir() if p.is_dir())
        run = train(
            "zoo-all-npr",
            args.out,
            train_real + zoo_rows(args.zoo, families, args.per_family, 0),
            args.size,
            args.epochs,
            "npr",
            args.overrides,
        )
        detectors.append(("npr on the whole zoo", str(run)))
        zoo_all = run
    if args.unseen and "unseen" in only and args.blur_meter:
        for row in blur_meter_rows(args.unseen):
            results["unseen"].append(row)
            print("UNSEEN " + json.dumps(row), flush=True)
    if args.unseen and "unseen" in only:
        for name, src in detectors:
            row = unseen_row(name, load_detector(src), args.unseen)
            results["unseen"].append(row)
            print("UNSEEN " + json.dumps(row), flush=True)

    if args.gan_zoo and "own" in only:
        gans = sorted(p.name for p in args.gan_zoo.iterdir() if p.is_dir())
        for gan in gans:
            files = images(args.gan_zoo / gan)
            if len(files) < 400:
                raise SystemExit(f"{args.gan_zoo / gan}: need 400 samples, found {len(files)}")
            own = {}
            for model in args.models.split(","):
                rows = train_real + [(p, FAKE, gan) for p in files[:200]]
                # At the detector size; a GAN below it is upscaled, so both classes are
                # first brought to its native side (data.native_size=floor).
                native = Image.open(files[0]).size[0]
                extra = ["data.native_size=floor"] if native < args.size else []
                own[f"{model} trained on it"] = train(
                    f"own-{model}-{gan}",
                    args.out,
                    rows,
                    args.size,
                    args.epochs,
                    model,
                    [*extra, *args.overrides],
                )
            if zoo_all is not None:
                own["npr on the whole zoo (never saw it)"] = zoo_all
            for name, run in own.items():
                det = load_detector(run)
                row = {"gan": gan, "detector": name, "size": det.size}
                for perturb in (None, "resize0.5+jpeg75"):
                    r = logits_of(det, test_real, perturb)
                    f = logits_of(det, files[200:400], perturb)
                    row[perturb or "clean"] = auc(r, f)
                results["own_gan"].append(row)
                print("OWN-GAN " + json.dumps(row), flush=True)

    if args.zoo64 and "hygiene" in only:
        fams = sorted(p.name for p in args.zoo64.iterdir() if p.is_dir())
        # Trained on each family's first 100 images, tested on the other 100.
        rows = train_real + zoo_rows(args.zoo64, fams, args.per_family, 0, limit=100)
        settings = {
            "off": ["data.native_size=ignore", "resample.enabled=false"],
            "on": ["data.native_size=floor"],
        }
        for tag, extra in settings.items():
            run = train(
                f"hygiene-{tag}", args.out, rows, 128, args.epochs, "npr", [*extra, *args.overrides]
            )
            det = load_detector(run)
            r = logits_of(det, test_real)
            row: dict = {"hygiene": tag}
            row["same_families_64px_upscaled"] = float(
                np.mean([auc(r, logits_of(det, images(args.zoo64 / f)[100:])) for f in fams])
            )
            if args.zoo:
                row["same_families_native_128px"] = float(
                    np.mean(
                        [
                            auc(r, logits_of(det, images(args.zoo / f)))
                            for f in fams
                            if (args.zoo / f).is_dir()
                        ]
                    )
                )
            if args.unseen:
                row |= {
                    k: v for k, v in unseen_row(tag, det, args.unseen).items() if k != "detector"
                }
            results["hygiene"].append(row)
            print("HYGIENE " + json.dumps(row), flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "generalisation.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out / 'generalisation.json'}")


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:  # a bad --set or data folder: one line, no traceback
        raise SystemExit(f"error: {exc}") from None
