"""``deepfake-lab demo``: the whole loop on built-in data in a few minutes on a laptop CPU.

Draws a procedural face set (or loads ``--data``), trains a small GAN on it, samples faces of
people who do not exist, and writes sample grids, loss curves and ``index.html`` into one run
folder. Later capabilities (metrics, a detector, watermark checks) add their sections here.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from rich.console import Console

from deepfake_lab.cache import cache_dir
from deepfake_lab.config import build_config
from deepfake_lab.data.dataset import FaceDataset
from deepfake_lab.data.procedural import render_faces, write_procedural_dataset
from deepfake_lab.errors import UserError
from deepfake_lab.evaluation.evaluate import evaluate_gan, metric_rows
from deepfake_lab.generate import generate_images
from deepfake_lab.provenance.marking import DETECTOR_DATA
from deepfake_lab.provenance.verify import verify_images
from deepfake_lab.report.html import ReportImage, Section, Table
from deepfake_lab.training.gan_config import GanConfig
from deepfake_lab.training.launch import train_gan
from deepfake_lab.training.report import write_gan_report

# Chosen by measurement (see README, "Demo"): on 2 CPU cores the demo trains for about three
# minutes. Cutout is left out of DiffAugment here: with 2000 images and a short run it slowed
# learning (FD-R56 16.8 with cutout vs 9.6 without, equal time). max_minutes caps slow machines.
DEMO_DEFAULTS = [
    "model.arch=fastgan",
    "model.size=32",
    "model.z_dim=64",
    "augment.policy=color,translation",
    "train.kimg=40",
    "train.batch=32",
    "train.max_minutes=3.5",
    "ema.half_life_kimg=1.0",
    "schedule.log_kimg=0.5",
    "schedule.sample_kimg=5",
    "schedule.checkpoint_kimg=10",
    "schedule.grid=8",
]
DEMO_IMAGES = 2000


def run_demo(
    data: str | Path | None = None,
    out: str | Path = "runs",
    overrides: list[str] | None = None,
    num_images: int = DEMO_IMAGES,
    console: Console | None = None,
    progress: bool = True,
    metrics: bool = True,
    metrics_weights: str | Path | None = None,
    detector: bool = True,
) -> Path:
    """Run the demo and return its run folder.

    Args:
        data: a folder of face images to use instead of the procedural faces.
        out: parent folder of the run folder.
        overrides: ``section.key=value`` config overrides (e.g. ``train.kimg=5``).
        num_images: how many procedural faces to draw (ignored with ``data``).
        console: where to print progress messages (None: quiet).
        progress: show the training progress bar.
        metrics: measure the generator (FD-R56, KID, precision/recall) when the ResNet-56
            weights are available.
        metrics_weights: ``resnet56-4bfd9763.th``; default: the model cache, if it is there.
        detector: train a detector on the real faces against the GAN's samples and measure it
            on held-out faces of both kinds.
    """
    t0 = time.perf_counter()
    # Lines name the user's --data and --out paths: printed as text, never as markup.
    say = functools.partial(console.print, markup=False) if console else (lambda *a, **k: None)
    overrides = DEMO_DEFAULTS + list(overrides or [])
    dataset = None
    if data is None:
        if num_images < 1:
            raise UserError("--num-images must be at least 1")
        size = build_config(GanConfig, None, overrides).model.size
        say(f"drawing {num_images} procedural faces at {size}px")
        dataset = FaceDataset.from_array(render_faces(num_images, size, seed=0))
        source = f"{num_images} procedural faces drawn by deepfake-lab (no real people)"
    else:
        source = f"images from {data}"
    result = train_gan(
        data,
        None,
        overrides,
        out=out,
        name="demo",
        dataset=dataset,
        console=console,
        progress=progress,
    )
    run_dir = result.run_dir
    cfg = build_config(GanConfig, run_dir / "config.yaml")
    say("sampling 16 faces of people who do not exist")
    manifest = generate_images(
        run_dir, 16, run_dir / "generated", seed=1000, grid=True, device=cfg.train.device
    )
    elapsed = time.perf_counter() - t0
    checks = {
        Path(r["path"]).name: r
        for r in verify_images([run_dir / "generated"], run_dir / "generated" / "verify.json")
    }
    found = [r for r in checks.values() if r["watermark"]]
    worst = max((r["bit_errors"] for r in found), default=None)
    demo = Section(
        heading="Demo",
        paragraphs=[
            f"Trained {cfg.model.arch} at {cfg.model.size}px for {result.nimg / 1000:.1f} kimg "
            f"({result.status}) on {source}; {result.images_per_sec:.0f} images/s; data, "
            f"training and sampling took {elapsed:.0f} s.",
            "Every face below is generated: it shows nobody. Each file carries an invisible "
            "watermark (generator fingerprint "
            f"{manifest['provenance']['payload']['fingerprint']}) and an AI-generated tag "
            f"(IPTC trainedAlgorithmicMedia); `deepfake-lab verify` read the mark back from "
            f"{len(found)} of {len(checks)} files (grid included), with at most {worst} "
            "corrected bit errors of 8 (generated/verify.json)"
            + (
                f"; {small} images under 32 px are tagged but too small to carry the mark."
                if (small := manifest["provenance"]["unmarked_too_small"])
                else "."
            ),
        ],
        tables=[
            Table(
                header=["image", "seed", "watermark", "bit errors", "metadata"],
                rows=[
                    [
                        r["file"],
                        r["seed"],
                        "yes" if checks[r["file"]]["watermark"] else "NO",
                        checks[r["file"]]["bit_errors"],
                        "AI-generated"
                        if checks[r["file"]]["metadata"].get("ai_generated")
                        else "missing",
                    ]
                    for r in manifest["images"][:4]
                ],
                caption="first generated files (generated/generate.json lists all)",
            )
        ],
        images=[ReportImage("generated/grid.png", "16 generated faces (seeds 1000-1015)")],
    )
    sections = [demo]
    ref = (
        Path(data)
        if data is not None
        else write_procedural_dataset(run_dir / "reference", num_images, cfg.model.size, seed=0)
    )
    if metrics:
        sections.append(
            _metrics_section(
                run_dir,
                ref,
                metrics_weights,
                cfg.model.size,
                num_images if data is None else None,
                say,
            )
        )
    if detector:
        sections.append(_detector_section(run_dir, ref, cfg.model.size, num_images, say))
    report = write_gan_report(run_dir, extra_sections=sections)
    say(f"demo done in {time.perf_counter() - t0:.0f} s: {report}")
    return run_dir


R56_FILE = "resnet56-4bfd9763.th"


def _metrics_section(
    run_dir: Path, ref: Path, weights: str | Path | None, size: int, procedural: int | None, say
) -> Section:
    """Generator metrics in the offline ResNet-56 space, with the real-vs-real noise floor."""
    path = Path(weights) if weights else cache_dir("models") / R56_FILE
    heading = "Generator metrics (FD-R56, KID, precision/recall)"
    if not path.is_file():
        say(f"metrics skipped: {path} not found")
        return Section(
            heading=heading,
            paragraphs=[
                f"Skipped: no {R56_FILE} found at {path}. Pass --metrics-weights PATH (the CIFAR "
                "ResNet-56 of akamaster/pytorch_resnet_cifar10) or place the file there."
            ],
        )
    say("measuring the generator in the ResNet-56 feature space")
    names = "fid,kid,pr"
    # Up to 1000 images a side: enough for a stable FD-R56 at this scale, and quick on a CPU.
    num = min(1000, procedural or 1000)
    result = evaluate_gan(run_dir, ref, names, weights=path, num=num, size=size)
    rows = [[name, value] for name, value in metric_rows(result)]
    paragraphs = [
        f"{result['num_fake']} generated vs {result['num_real']} reference images, in the "
        f"feature space of a CIFAR-10 ResNet-56 ({result['label']}: a Frechet distance that is "
        "NOT Inception FID and not comparable with published FIDs). Lower FD-R56 and KID, "
        "higher precision/recall are better."
    ]
    if procedural:
        # The floor: fresh procedural faces the GAN never saw, against the same reference.
        other = write_procedural_dataset(run_dir / "reference-heldout", num, size, seed=1)
        floor = evaluate_gan(other, ref, names, weights=path, num=num, size=size)
        rows = [[n, v, f] for (n, v), (_, f) in zip(rows, metric_rows(floor), strict=True)]
        paragraphs.append(
            "Noise floor: 1000 other procedural faces (never trained on) against "
            "the same reference set score as in the last column."
        )
        return Section(
            heading=heading,
            paragraphs=paragraphs,
            tables=[Table(header=["metric", "generator", "held-out real faces"], rows=rows)],
        )
    return Section(
        heading=heading,
        paragraphs=paragraphs,
        tables=[Table(header=["metric", "generator"], rows=rows)],
    )


def _detector_section(run_dir: Path, ref: Path, size: int, num_images: int, say) -> Section:
    """Train ``npr`` on real faces vs this GAN's samples; measure it on held-out ones."""
    from deepfake_lab.detect import detect_images
    from deepfake_lab.evaluation.detector_eval import POINT_KEYS, evaluate_detector
    from deepfake_lab.training.detector_launch import train_detector

    folder = run_dir / "detector"
    n = max(16, min(1000, num_images // 2))
    say(f"detector: {n} generated faces against the real ones, then held-out sets of both")
    # The detector's fakes are written unmarked, so that it learns the generator's artefacts,
    # not our watermark (which `verify` reads exactly anyway).
    unmarked = DETECTOR_DATA
    generate_images(run_dir, n, folder / "fakes-train", seed=50_000, provenance=unmarked)
    generate_images(run_dir, n, folder / "fakes-heldout", seed=60_000, provenance=unmarked)
    heldout_real = write_procedural_dataset(folder / "reals-heldout", n, size, seed=2)
    res = train_detector(
        [ref],
        [folder / "fakes-train"],
        model="npr",
        size=size,
        epochs=3,
        out=folder,
        name="npr",
        progress=False,
        tensorboard=False,
        overrides=["train.batch=64", "model.kwargs={width: 16}"],
    )
    r = evaluate_detector(
        res.run_dir,
        real=[heldout_real],
        fake=[folder / "fakes-heldout"],
        out=folder / "eval",
        n_boot=500,
    )
    rows = []
    for key in POINT_KEYS:
        v = r.get(key)
        lo, hi = r.get("intervals", {}).get(key, (None, None))
        rows.append(
            [key, "n/a" if v is None else f"{v:.4f}", "" if lo is None else f"{lo:.4f} - {hi:.4f}"]
        )
    rob = [
        [name, "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"]
        for name, m in r["robustness"].items()
    ]
    # A few Grad-CAM overlays: where the detector looks, on held-out fakes and reals.
    picks = sorted((folder / "fakes-heldout").glob("seed*.png"))[:4]
    picks += sorted((heldout_real / "images").glob("*.png"))[:4]
    scanned = detect_images(res.run_dir, picks, explain_dir=folder / "gradcam")
    rel = folder.relative_to(run_dir)
    cams = [
        ReportImage(
            Path(r["explain"]).relative_to(run_dir),
            f"{'generated' if 'fakes' in r['path'] else 'real'}: P(fake) {r['probability']:.2f}",
        )
        for r in scanned
        if r.get("explain")
    ]
    return Section(
        heading="Detector (npr) against this GAN",
        paragraphs=[
            f"Trained on {ref} (real) vs {n} samples of this generator, 3 epochs; measured on "
            f"{r['n_real']} held-out real and {r['n_fake']} held-out generated faces at the "
            f"threshold calibrated on validation ({r['threshold']:.3f}). ROC-AUC 0.5 would "
            "mean the generator's faces cannot be told from real ones. The detector's "
            "generated faces are written without the watermark (recorded in their "
            "generate.json), so that it learns the generator's artefacts, not our mark.",
        ],
        tables=[
            Table(header=["metric", "value", "95% interval"], rows=rows),
            Table(header=["degradation", "ROC-AUC"], rows=rob, caption="robustness"),
        ],
        images=[
            ReportImage(f"{rel}/eval/roc.png", "ROC curve (held-out)"),
            ReportImage(f"{rel}/eval/scores.png", "score histogram"),
            *cams,
        ],
    )
