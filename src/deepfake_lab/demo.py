"""``deepfake-lab demo``: the whole loop on built-in data in a few minutes on a laptop CPU.

Draws a procedural face set (or loads ``--data``), trains a small GAN on it, samples faces of
people who do not exist, and writes sample grids, loss curves and ``index.html`` into one run
folder. Later capabilities (metrics, a detector, watermark checks) add their sections here.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from deepfake_lab.config import build_config
from deepfake_lab.data.dataset import FaceDataset
from deepfake_lab.data.procedural import write_procedural_dataset
from deepfake_lab.generate import generate_images
from deepfake_lab.report.html import ReportImage, Section, Table
from deepfake_lab.training.gan_config import GanConfig
from deepfake_lab.training.gan_loop import run_training
from deepfake_lab.training.report import write_gan_report
from deepfake_lab.training.run_dir import create_run_dir

# Chosen so the demo finishes in well under 5 minutes on 2 CPU cores (see README, "Demo").
DEMO_DEFAULTS = {
    "model": {"arch": "fastgan", "size": 32, "z_dim": 64},
    "train": {"kimg": 40.0, "batch": 32},
    "ema": {"half_life_kimg": 1.0},
    "schedule": {"log_kimg": 0.5, "sample_kimg": 5.0, "checkpoint_kimg": 10.0, "grid": 8},
    "run": {"name": "demo"},
}
DEMO_IMAGES = 2000


def run_demo(
    data: str | Path | None = None,
    out: str | Path = "runs",
    overrides: list[str] | None = None,
    num_images: int = DEMO_IMAGES,
    console: Console | None = None,
    progress: bool = True,
) -> Path:
    """Run the demo and return its run folder.

    Args:
        data: a folder of face images to use instead of the procedural faces.
        out: parent folder of the run folder.
        overrides: ``section.key=value`` config overrides (e.g. ``train.kimg=5``).
        num_images: how many procedural faces to draw (ignored with ``data``).
    """
    t0 = time.perf_counter()
    cfg = build_config(
        GanConfig, None, [f"run.out={out}"] + list(overrides or []), base=DEMO_DEFAULTS
    )
    run_dir = create_run_dir(cfg.run.out, cfg.run.name)
    say = console.print if console else (lambda *a, **k: None)
    if data is None:
        say(f"drawing {num_images} procedural faces at {cfg.model.size}px")
        data_dir = write_procedural_dataset(
            run_dir / "data", num_images, cfg.model.size, seed=cfg.train.seed
        )
        source = f"{num_images} procedural faces drawn by deepfake-lab (no real people)"
    else:
        data_dir = Path(data)
        source = f"images from {data_dir}"
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": str(data_dir)})})
    dataset = FaceDataset.from_folder(data_dir, cfg.model.size, cfg.data.max_images)
    result = run_training(cfg, run_dir, dataset, console=console, progress=progress)
    say("sampling 16 faces of people who do not exist")
    manifest = generate_images(
        run_dir, 16, run_dir / "generated", seed=1000, grid=True, device=cfg.train.device
    )
    elapsed = time.perf_counter() - t0
    demo = Section(
        heading="Demo",
        paragraphs=[
            f"Trained {cfg.model.arch} at {cfg.model.size}px for {result.nimg / 1000:.1f} kimg on "
            f"{source}; {result.images_per_sec:.0f} images/s; whole demo {elapsed:.0f} s.",
            "Every face below is generated: it shows nobody. Metrics, a detector and "
            "watermark checks join this report in later versions.",
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
    report = write_gan_report(run_dir, extra_sections=[demo])
    say(f"demo done in {elapsed:.0f} s: {report}")
    return run_dir
