"""``deepfake-lab tune ...``: hyper-parameter searches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from deepfake_lab.cli.common import (
    config_option,
    console,
    detector_arch_option,
    device_option,
    fake_option,
    handle_errors,
    manifest_option,
    no_progress_option,
    old_arch_option,
    out_option,
    pick_arch,
    real_option,
    seed_option,
    set_option,
)

tune_app = typer.Typer(help="Search hyper-parameters.", no_args_is_help=True)


def print_ranked(results: list[dict[str, Any]], title: str) -> None:
    """The ranked trials as a rich table."""
    from rich.table import Table

    from deepfake_lab.training.tune import TABLE_HEADER, results_table

    table = Table(title=title)
    for col in TABLE_HEADER:
        right = col in ("rank", "trial", "val ROC-AUC", "val EER", "epoch")
        table.add_column(col, justify="right" if right else "left", overflow="fold")
    for row in results_table(results):
        table.add_row(*row)
    console.print(table)


@tune_app.command("detector")
@handle_errors
def tune_detector_cmd(
    real: list[Path] = real_option(),
    fake: list[Path] = fake_option(),
    manifest: Path = manifest_option(),
    arch: str = detector_arch_option(),
    old_model: str | None = old_arch_option(),
    method: str = typer.Option("grid", "--method", help="grid (every combination) | random."),
    trials: int = typer.Option(8, "--trials", help="Random mode: distinct combinations drawn."),
    space: Path = typer.Option(
        None,
        "--space",
        help="YAML of dotted key -> list of values (default: optim.lr x augment.strength).",
    ),
    size: int = typer.Option(None, "--size", help="Input size in px (model.size)."),
    epochs: int = typer.Option(None, "--epochs", help="Training epochs of each trial."),
    config: Path = config_option("YAML config shared by every trial"),
    overrides: list[str] = set_option("Override for every trial:"),
    seed: int = seed_option(0, "Seed of the random draw"),
    out: Path = out_option(what="Parent folder of the tune folder"),
    name: str = typer.Option("tune", "--name", help="Tune folder name (NNNNN-NAME)."),
    resume: Path = typer.Option(None, "--resume", help="A tune folder to continue."),
    device: str = device_option(None, " (default: the config's train.device)"),
    no_progress: bool = no_progress_option(),
) -> None:
    """Grid or random search over detector hyper-parameters; prints the ranked trials."""
    model = pick_arch(arch, old_model)
    from deepfake_lab.training.tune import SearchInterrupted, load_space, tune_detector

    try:
        results = tune_detector(
            real,
            fake,
            manifest,
            load_space(space) if space else None,
            method,
            trials,
            seed,
            overrides,
            out,
            name,
            config=config,
            model=model,
            size=size,
            epochs=epochs,
            device=device,
            resume=resume,
            console=console,
            progress=not no_progress,
        )
    except SearchInterrupted as stop:
        if stop.results:
            print_ranked(stop.results, f"finished trials in {stop.tune_dir}")
        console.print(
            f"interrupted; continue with --resume {stop.tune_dir}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(128 + stop.signal if stop.signal else 130) from None
    if not results:
        console.print("no trial finished")
        return
    tune_dir = Path(results[0]["tune_dir"])
    print_ranked(results, f"{tune_dir.name}: ranked by validation ROC-AUC (ties: EER)")
    console.print(
        f"tune folder: {tune_dir}\nresults: {tune_dir / 'results.md'}\n"
        "note: the best validation score of several trials is optimistic; "
        "evaluate the winner on held-out data.",
        highlight=False,
        soft_wrap=True,
    )
