"""``deepfake-lab demo``: the whole loop on built-in data in a few minutes on a laptop CPU.

Draws a procedural face set (or loads ``--data``), trains a small GAN on it, samples faces of
people who do not exist, and writes sample grids, loss curves and ``index.html`` into one run
folder. Later capabilities (metrics, a detector, watermark checks) add their sections here.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from deepfake_lab.cache import cache_dir
from deepfake_lab.config import build_config
from deepfake_lab.data.dataset import FaceDataset
from deepfake_lab.data.procedural import render_faces, write_procedural_dataset
from deepfake_lab.errors import UserError
from deepfake_lab.generate import generate_images
from deepfake_lab.metrics.evaluate import evaluate_gan, metric_rows
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
    """
    t0 = time.perf_counter()
    say = console.print if console else (lambda *a, **k: None)
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
    demo = Section(
        heading="Demo",
        paragraphs=[
            f"Trained {cfg.model.arch} at {cfg.model.size}px for {result.nimg / 1000:.1f} kimg "
            f"({result.status}) on {source}; {result.images_per_sec:.0f} images/s; data, "
            f"training and sampling took {elapsed:.0f} s.",
            "Every face below is generated: it shows nobody. A detector and watermark checks "
            "join this report in later versions.",
        ],
        tables=[
            Table(
                header=["image", "seed"],
                rows=[[r["file"], r["seed"]] for r in manifest["images"][:4]],
                caption="first generated files (generated/generate.json lists all)",
            )
        ],
        images=[ReportImage("generated/grid.png", "16 generated faces (seeds 1000-1015)")],
    )
    sections = [demo]
    if metrics:
        ref = (
            Path(data)
            if data is not None
            else write_procedural_dataset(run_dir / "reference", num_images, cfg.model.size, seed=0)
        )
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
