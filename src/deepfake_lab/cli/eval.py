"""``deepfake-lab eval ...``: measuring trained models."""

from __future__ import annotations

from pathlib import Path

import typer

from deepfake_lab.cli.app import app
from deepfake_lab.cli.common import console, handle_errors

eval_app = typer.Typer(help="Evaluate models.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("gan")
@handle_errors
def eval_gan_cmd(
    source: Path = typer.Argument(
        ..., help="Run folder, checkpoint, export folder, or a folder of generated images."
    ),
    ref: Path = typer.Option(..., "--ref", help="Folder of real images to compare with."),
    metrics: str = typer.Option(
        "fid,kid,pr", "--metrics", help="Comma-separated: fid, kid, is, pr, dc."
    ),
    features: str = typer.Option(
        "resnet56-cifar", "--features", help="Feature space (a registered extractor)."
    ),
    weights: Path = typer.Option(None, "--weights", help="Weights file of the feature space."),
    num: int = typer.Option(
        10000, "--num", help="Images to sample (a folder: at most this many of its images)."
    ),
    batch: int = typer.Option(64, "--batch", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first sample (image i: seed+i)."),
    size: int = typer.Option(
        None,
        "--size",
        help="Image size in px for both sets (default: the generator's; for a folder of "
        "images, the reference images' own).",
    ),
    cache_dir: Path = typer.Option(
        None, "--cache-dir", help="Reference-statistics cache (default ~/.cache/deepfake-lab)."
    ),
    json_out: Path = typer.Option(None, "--json", help="Also write the results to this file."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Score generated faces against real ones: FD (FID), KID, IS, precision/recall, ..."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from deepfake_lab.io import atomic_write_json
    from deepfake_lab.metrics.evaluate import evaluate_gan, metric_rows

    stages = {"fake": "generated images", "real": "reference images"}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        disable=no_progress,
        transient=True,
    ) as bar:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stages.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done)

        result = evaluate_gan(
            source,
            ref,
            metrics=metrics,
            features=features,
            weights=weights,
            num=num,
            batch=batch,
            device=device,
            seed=seed,
            cache_dir=cache_dir,
            progress=report,
            size=size,
        )
    console.print(
        f"feature space {result['feature_space']} ({result['label']}): "
        f"{result['num_fake']} generated vs {result['num_real']} reference images",
        highlight=False,
    )
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metric_rows(result):
        table.add_row(name, value)
    console.print(table)
    if result.get("ref_cache"):
        hit = "reused" if result["ref_cache"]["hit"] else "computed and cached"
        console.print(
            f"reference statistics {hit}: {result['ref_cache']['path']}",
            highlight=False,
            soft_wrap=True,
        )
    if json_out is not None:
        atomic_write_json(json_out, result)
        console.print(f"wrote {json_out}", highlight=False)
