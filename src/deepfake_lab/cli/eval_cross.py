"""``deepfake-lab eval cross-source``: train on fake source A, test on fake source B."""

from __future__ import annotations

from pathlib import Path

import typer

from deepfake_lab.cli.common import (
    console,
    detector_arch_option,
    fake_option,
    handle_errors,
    json_option,
    no_progress_option,
    old_arch_option,
    out_option,
    pick_arch,
    real_option,
    seed_option,
    set_option,
)
from deepfake_lab.safe_text import for_console

#: Added to the ``eval`` group by :mod:`deepfake_lab.cli.eval`.
commands = typer.Typer()


@commands.command("cross-source")
@handle_errors
def eval_cross_source_cmd(
    real: list[Path] = real_option(required=True),
    fake: list[Path] = fake_option(required=True, what="Folder of one fake source (2+)"),
    arch: str = detector_arch_option("npr"),
    old_model: str | None = old_arch_option(),
    size: int = typer.Option(None, "--size", help="Input size in px."),
    epochs: int = typer.Option(None, "--epochs", help="Training epochs per detector."),
    overrides: list[str] = set_option("Detector config override"),
    out: Path = out_option(what="Parent folder of the run folder"),
    test: float = typer.Option(0.3, "--test", help="Share of every source held out for tests."),
    seed: int = seed_option(0, "Seed of the split"),
    json_path: Path = json_option("Write the matrix as JSON here"),
    no_progress: bool = no_progress_option(),
) -> None:
    """ROC-AUC of a detector trained on each fake source, tested on every source."""
    model = pick_arch(arch, old_model)
    from rich.table import Table

    from deepfake_lab.data.detection import fake_source_names
    from deepfake_lab.errors import UserError
    from deepfake_lab.evaluation.cross_source import cross_source_matrix

    if len(fake) < 2:
        raise UserError("give at least two --fake folders (one per source) to cross them")
    fakes = dict(zip(fake_source_names(fake), fake, strict=True))
    r = cross_source_matrix(
        real,
        fakes,
        model=model,
        size=size,
        overrides=overrides,
        out=out,
        epochs=epochs,
        test=test,
        seed=seed,
        json_path=json_path,
        console=console,
        progress=not no_progress,
    )
    table = Table(title=f"{model}: ROC-AUC, rows = trained on, columns = tested on")
    table.add_column("trained on")
    for s in r["sources"]:
        table.add_column(for_console(s), justify="right")
    for s, row in zip(r["sources"], r["matrix"], strict=True):
        table.add_row(for_console(s), *("n/a" if v is None else f"{v:.4f}" for v in row))
    console.print(table)
    console.print(f"run folder: {r['run_dir']}  heatmap: {r['plot']}", markup=False)
