"""``deepfake-lab eval resistance``: how detectable a generator's samples are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from deepfake_lab.cli.common import (
    config_option,
    console,
    detector_arch_option,
    device_option,
    handle_errors,
    json_option,
    no_progress_option,
    old_arch_option,
    out_option,
    pick_arch,
    seed_option,
    set_option,
)

#: Added to the ``eval`` group by :mod:`deepfake_lab.cli.eval`.
commands = typer.Typer()


def _num(v: Any, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _interval(pair: list[Any] | tuple[Any, Any]) -> str:
    lo, hi = pair
    return "" if lo is None else f"{lo:.4f} - {hi:.4f}"


@commands.command("resistance")
@handle_errors
def eval_resistance_cmd(
    source: Path = typer.Argument(..., help="GAN run folder, checkpoint or export."),
    real: Path = typer.Option(..., "--real", help="Folder of real faces."),
    num: int = typer.Option(1000, "--num", help="Samples to generate."),
    arch: str = detector_arch_option("npr", "Fresh detector to train"),
    old_model: str | None = old_arch_option(),
    size: int = typer.Option(None, "--size", help="Detector input px (default: the samples')."),
    epochs: int = typer.Option(None, "--epochs", help="Training epochs of the fresh detector."),
    detector: list[Path] = typer.Option(
        [], "--detector", help="Existing detector to measure on the samples (repeatable)."
    ),
    max_real: int = typer.Option(None, "--max-real", help="Reals used at most (default --num)."),
    test: float = typer.Option(0.3, "--test", help="Held-out share of reals and samples."),
    config: Path = config_option("YAML config of the fresh detector"),
    overrides: list[str] = set_option("Detector config override"),
    seed: int = seed_option(0, "Seed of the samples and of the split"),
    truncation: float = typer.Option(1.0, "--truncation", help="Sampling psi in [0, 1]."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Resamples for 95% intervals."),
    out: Path = out_option(what="Parent folder of the result folder"),
    name: str = typer.Option("resistance", "--name", help="Result folder name."),
    json_path: Path = json_option(),
    device: str = device_option(),
    no_progress: bool = no_progress_option(),
) -> None:
    """Detection resistance: a fresh detector on the generator's samples vs held-out reals
    (ROC-AUC 0.5 = indistinguishable), and what existing detectors catch."""
    model = pick_arch(arch, old_model)
    from rich.table import Table

    from deepfake_lab.evaluation.resistance import detection_resistance

    r = detection_resistance(
        source,
        real,
        num=num,
        model=model,
        size=size,
        epochs=epochs,
        seed=seed,
        out=out,
        detectors=detector,
        name=name,
        max_real=max_real,
        test=test,
        overrides=overrides,
        config=config,
        truncation=truncation,
        n_boot=bootstrap,
        device=device,
        json_path=json_path,
        console=console,
        progress=not no_progress,
    )
    n = r["n_test"]
    table = Table(
        title=f"fresh {r['detector_model']} detector, held out: {n['real']} real vs "
        f"{n['generated']} generated at {r['size']} px"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("95% interval", justify="right")
    table.add_row(
        "ROC-AUC (0.5 = indistinguishable)", _num(r["roc_auc"]), _interval(r["roc_auc_interval"])
    )
    table.add_row(
        "resistance (1 = indistinguishable)",
        _num(r["resistance"]),
        _interval(r["resistance_interval"]),
    )
    h = r["held_out"]
    for key in ("eer", "accuracy"):
        table.add_row(
            key, _num(h.get(key)), _interval(h.get("intervals", {}).get(key, [None, None]))
        )
    console.print(table)
    if r["detectors"]:
        dt = Table(title=f"existing detectors on all {r['num']} samples")
        dt.add_column("detector", overflow="fold")
        dt.add_column("detection rate", justify="right")
        dt.add_column("95% interval", justify="right")
        dt.add_column("FPR on held-out reals", justify="right")
        dt.add_column("ROC-AUC", justify="right")
        for d in r["detectors"]:
            cal = "" if d["calibrated"] else " (uncalibrated)"
            dt.add_row(
                f"{d['model'].get('name', '?')}: {d['detector']}{cal}",
                _num(d["detection_rate"]),
                _interval(d["interval"]),
                _num(d["false_positive_rate"]),
                _num(d["roc_auc"]),
            )
        console.print(dt)
    console.print(f"result folder: {r['run_dir']}", highlight=False, markup=False)
    if json_path:
        console.print(f"wrote {json_path}", highlight=False, markup=False)
