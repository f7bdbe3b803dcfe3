"""Hyper-parameter search for detectors: ``deepfake-lab tune detector``.

A search is a grid (every combination of the space) or a random draw of distinct
combinations; each trial is one ordinary :func:`train_detector` run, so every trial folder
can be evaluated, exported or resumed like any other detector run. Layout::

    runs/NNNNN-tune/
        tune.json          the plan: space, method, seed, base overrides, every trial
        results.jsonl      one line per finished trial (appended and fsynced)
        results.md         the ranked table, rewritten after each trial
        00000-trial-00/    a detector run folder (config, checkpoints, calibration, ...)
        00001-trial-01/ ...

Trials are ranked by their best validation ROC-AUC, ties by the EER of that epoch. All
trials share one validation split (it depends on ``train.seed`` only), so they are
comparable; but picking the best of N on validation makes its validation score optimistic:
measure the winner on held-out data (``deepfake-lab eval detector``) before quoting it.
"""

from __future__ import annotations

import inspect
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from deepfake_lab.config import build_config, read_yaml
from deepfake_lab.errors import UserError
from deepfake_lab.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
from deepfake_lab.models.detectors import DETECTORS
from deepfake_lab.runs.run_dir import create_run_dir, latest_run
from deepfake_lab.training.detector import build_model
from deepfake_lab.training.detector_config import DetectorConfig
from deepfake_lab.training.detector_launch import train_detector

#: Small default: learning rate x augmentation strength, 6 trials.
DEFAULT_SPACE: dict[str, list[Any]] = {
    "optim.lr": [3e-4, 1e-3, 3e-3],
    "augment.strength": [0.5, 1.0],
}
#: Keys that only exist for some detectors; dropped (with a note) for the others.
MODEL_KWARG_PREFIX = "model.kwargs."
#: Statuses of a trial that ran to an end of its own (an interrupted one is not recorded).
FINISHED = ("done", "early stop", "time limit", "cpu limit")


class SearchInterrupted(KeyboardInterrupt):
    """A signal stopped a trial; finished trials are on disk and ``--resume`` continues.

    Attributes:
        tune_dir: the tune folder.
        signal: the signal number (SIGINT, SIGTERM, ...), or None.
        results: the finished trials, ranked.
    """

    def __init__(self, tune_dir: Path, signal: int | None, results: list[dict[str, Any]]) -> None:
        super().__init__(f"search interrupted; resume with --resume {tune_dir}")
        self.tune_dir, self.signal, self.results = tune_dir, signal, results


def _as_overrides(values: dict[str, Any]) -> list[str]:
    # JSON is valid YAML, so floats, lists and strings survive the --set parser unchanged.
    return [f"{k}={json.dumps(v)}" for k, v in values.items() if v is not None]


def load_space(path: str | Path) -> dict[str, list[Any]]:
    """Read a search space from YAML: ``{dotted.key: [value, ...], ...}``.

    Raises:
        UserError: a missing file, or a document that is not a mapping of non-empty lists.
    """
    return check_space(read_yaml(path), str(path))


def check_space(space: dict[str, Any], where: str = "space") -> dict[str, list[Any]]:
    """Validate a space: dotted string keys, each with a non-empty list of distinct values."""
    if not isinstance(space, dict) or not space:
        raise UserError(f"{where}: the search space must be a non-empty mapping key -> [values]")
    out: dict[str, list[Any]] = {}
    for key, values in space.items():
        if not isinstance(key, str) or not key or any(not p for p in key.split(".")):
            raise UserError(f"{where}: bad key {key!r}; use dotted config keys like optim.lr")
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}: {key} needs a non-empty list of values, got {values!r}")
        canon = [json.dumps(v, sort_keys=True) for v in values]
        if len(set(canon)) != len(canon):
            raise UserError(f"{where}: {key} lists a value twice: {values!r}")
        out[key] = list(values)
    return out


def _model_params(name: str) -> set[str] | None:
    """Constructor arguments of detector ``name``; None when it takes ``**kwargs``."""
    params = inspect.signature(DETECTORS.get(name)).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params}


def fit_space_to_model(
    space: dict[str, list[Any]], model: str
) -> tuple[dict[str, list[Any]], list[str]]:
    """Drop ``model.kwargs.X`` keys that detector ``model`` does not take.

    One space file can then serve several detectors (``width`` / ``depth`` exist for
    ``resnet``, ``width`` for ``npr``, neither for ``spectrum``).

    Returns:
        The space for this model and one note per dropped key.
    """
    params = _model_params(model)
    kept, notes = {}, []
    for key, values in space.items():
        arg = key.removeprefix(MODEL_KWARG_PREFIX)
        if key.startswith(MODEL_KWARG_PREFIX) and params is not None and arg not in params:
            notes.append(f"{key} dropped from the space: detector {model!r} has no {arg!r}")
            continue
        kept[key] = values
    if not kept:
        raise UserError(f"no key of the search space applies to detector {model!r}")
    return kept, notes


def plan_trials(
    space: dict[str, list[Any]], method: str = "grid", trials: int = 8, seed: int = 0
) -> list[dict[str, Any]]:
    """The combinations to run, as ``{key: value}`` dicts in a fixed order.

    Args:
        space: key -> candidate values; grid order follows the keys' order (last varies
            fastest), values their listed order.
        method: ``grid`` (every combination; ``trials`` is not used) or ``random``
            (``min(trials, grid size)`` distinct combinations, without replacement).
        trials: number of random draws.
        seed: seed of the random draw: the same seed gives the same trials.

    Raises:
        UserError: an unknown method or ``trials < 1``.
    """
    keys = list(space)
    sizes = [len(space[k]) for k in keys]
    total = math.prod(sizes)
    if method == "grid":
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*space.values())]
    if method != "random":
        raise UserError(f"unknown search method {method!r}; use grid or random")
    if trials < 1:
        raise UserError(f"--trials must be at least 1, got {trials}")
    rng = np.random.default_rng(seed)
    # Draw flat grid indices without replacement and decode them (mixed radix): distinct
    # combinations without ever listing a possibly huge grid.
    picks = rng.choice(total, size=min(trials, total), replace=False)
    out = []
    for flat in picks.tolist():
        combo, rest = {}, int(flat)
        for key, size in zip(reversed(keys), reversed(sizes), strict=True):
            rest, i = divmod(rest, size)
            combo[key] = space[key][i]
        out.append({k: combo[k] for k in keys})
    return out


def _best_epoch(run_dir: Path) -> dict[str, Any]:
    """Validation metrics of the epoch with the best ROC-AUC (the one best.pt holds)."""
    best: dict[str, Any] = {}
    for rec in read_jsonl(run_dir / "metrics.jsonl"):
        auc = rec.get("Val/roc_auc")
        # Strictly greater, as the trainer: the first epoch reaching the best is kept.
        if auc is not None and (not best or auc > best["roc_auc"]):
            best = {
                "roc_auc": auc,
                "eer": rec.get("Val/eer"),
                "ap": rec.get("Val/ap"),
                "accuracy": rec.get("Val/accuracy"),
                "epoch": rec.get("epoch"),
            }
    return best


def rank_results(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trials sorted best first: highest val ROC-AUC, then lowest EER, then trial number."""

    def key(r: dict[str, Any]) -> tuple[float, float, int]:
        auc, eer = r.get("val", {}).get("roc_auc"), r.get("val", {}).get("eer")
        return (
            -(auc if auc is not None else -math.inf),
            eer if eer is not None else math.inf,
            r["trial"],
        )

    return sorted(results, key=key)


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def format_overrides(overrides: dict[str, Any]) -> str:
    """``{"optim.lr": 0.001}`` -> ``optim.lr=0.001`` (the ``--set`` form)."""
    return " ".join(f"{k}={json.dumps(v)}" for k, v in overrides.items())


def results_table(results: list[dict[str, Any]]) -> list[list[str]]:
    """Rows of the ranked table: rank, trial, ROC-AUC, EER, epoch, status, overrides and the
    trial's run folder name (inside the tune folder)."""
    rows = []
    for rank, r in enumerate(rank_results(results), start=1):
        v = r.get("val", {})
        rows.append(
            [
                str(rank),
                f"{r['trial']:02d}",
                _fmt(v.get("roc_auc")),
                _fmt(v.get("eer")),
                _fmt(v.get("epoch")),
                r["status"],
                format_overrides(r["overrides"]),
                Path(r["run_dir"]).name,  # inside the tune folder, beside results.md
            ]
        )
    return rows


TABLE_HEADER = ["rank", "trial", "val ROC-AUC", "val EER", "epoch", "status", "overrides", "run"]


def write_results_md(path: Path, results: list[dict[str, Any]], title: str) -> None:
    """The ranked table as Markdown, atomically."""
    lines = [f"# {title}", "", "| " + " | ".join(TABLE_HEADER) + " |"]
    lines.append("|" + "---|" * len(TABLE_HEADER))
    for row in results_table(results):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    atomic_write_text(path, "\n".join(lines) + "\n")


def _data_record(
    real: list[str | Path] | None, fake: list[str | Path] | None, manifest: str | Path | None
) -> dict[str, Any]:
    return {
        "real": [str(Path(p).resolve()) for p in real or []],
        "fake": [str(Path(p).resolve()) for p in fake or []],
        "manifest": str(Path(manifest).resolve()) if manifest else None,
    }


def _new_plan(
    data: dict[str, Any],
    space: dict[str, list[Any]] | None,
    method: str,
    trials: int,
    seed: int,
    shared: list[str],
    config: str | Path | None,
) -> dict[str, Any]:
    """Validate everything a search needs and list its trials (nothing is written)."""
    base_cfg = build_config(DetectorConfig, config, shared)
    fitted, notes = fit_space_to_model(check_space(space or DEFAULT_SPACE), base_cfg.model.arch)
    chosen = plan_trials(fitted, method, trials, seed)
    for combo in chosen:  # every trial's config and model must build before any trial runs
        build_model(build_config(DetectorConfig, config, shared + _as_overrides(combo)))
    return {
        "data": data,
        "space": fitted,
        "method": method,
        "seed": seed,
        "config": str(Path(config).resolve()) if config else None,
        "shared_overrides": shared,
        "notes": notes,
        "trials": chosen,
    }


def tune_detector(
    real: list[str | Path] | None = None,
    fake: list[str | Path] | None = None,
    manifest: str | Path | None = None,
    space: dict[str, list[Any]] | None = None,
    method: str = "grid",
    trials: int = 8,
    seed: int = 0,
    base_overrides: list[str] | None = None,
    out: str | Path = "runs",
    name: str = "tune",
    *,
    config: str | Path | None = None,
    model: str | None = None,
    size: int | None = None,
    epochs: int | None = None,
    device: str | None = None,
    resume: str | Path | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train one detector per point of a search space; rank them on validation.

    Args:
        real, fake, manifest, config, model, size, epochs, device: as :func:`train_detector`,
            shared by every trial.
        space: dotted config key -> candidate values, e.g. ``{"optim.lr": [1e-3, 3e-3]}``;
            default :data:`DEFAULT_SPACE`. ``model.kwargs.X`` keys the detector does not take
            are dropped with a note.
        method: ``grid`` or ``random`` (see :func:`plan_trials`).
        trials: random draws (distinct combinations); unused by ``grid``.
        seed: seed of the random draw (training seeds come from the config, ``train.seed``).
        base_overrides: ``key=value`` strings applied to every trial before its own values.
        out, name: the tune folder is ``out/NNNNN-name``.
        resume: an existing tune folder: its stored plan (space, trials, overrides, data)
            continues; finished trials are skipped and an interrupted one resumes exactly.
            The data may be omitted; if given it must be the stored data.

    Returns:
        One record per finished trial, ranked best first: ``trial``, ``overrides`` (dict),
        ``run_dir``, ``best`` (checkpoint or None), ``status``, ``step``, ``val`` (best-epoch
        ``roc_auc``, ``eer``, ``ap``, ``accuracy``, ``epoch``), ``tune_dir``.

    Raises:
        UserError: a bad space, method or config value (before any trial runs), or a resume
            with other data.
        SearchInterrupted: a signal stopped a trial (the finished ones are on disk).
    """
    data = _data_record(real, fake, manifest)
    if resume is not None:
        tune_dir = Path(resume)
        if not (tune_dir / "tune.json").is_file():
            raise UserError(f"{tune_dir} is not a tune folder (no tune.json)")
        plan = json.loads((tune_dir / "tune.json").read_text(encoding="utf-8"))
        given = real or fake or manifest
        if given and data != plan["data"]:
            raise UserError(f"{tune_dir} searched other data; resume it with the same data")
        data = plan["data"]
    else:
        flags = {"model.arch": model, "model.size": size, "train.epochs": epochs}
        shared = _as_overrides(flags) + list(base_overrides or [])
        plan = _new_plan(data, space, method, trials, seed, shared, config)
        tune_dir = create_run_dir(out, name)
        for sub in ("checkpoints", "samples"):  # a tune folder holds trial runs, not these
            (tune_dir / sub).rmdir()
        atomic_write_json(tune_dir / "tune.json", plan)
    for note in plan["notes"]:
        if console:
            console.print(f"[yellow]note:[/] {note}", highlight=False)
    results_path = tune_dir / "results.jsonl"
    results = read_jsonl(results_path)
    done = {r["trial"] for r in results}
    n = len(plan["trials"])
    title = f"detector search {tune_dir.name} ({plan['method']}, {n} trials)"
    for i, combo in enumerate(plan["trials"]):
        if i in done:
            continue
        if console:
            console.rule(f"trial {i + 1}/{n}: {format_overrides(combo)}", style="dim")
        trial_name = f"trial-{i:02d}"
        res = train_detector(
            data["real"],
            data["fake"],
            data["manifest"],
            plan["config"],
            plan["shared_overrides"] + _as_overrides(combo),
            out=tune_dir,
            name=trial_name,
            device=device,
            # A trial cut short by a signal continues from its last checkpoint.
            resume=latest_run(tune_dir, trial_name),
            console=console,
            progress=progress,
            tensorboard=False,
        )
        if res.status not in FINISHED:  # nothing recorded for it: resume reruns it
            raise SearchInterrupted(tune_dir, res.signal, rank_results(results))
        record = {
            "trial": i,
            "overrides": combo,
            "run_dir": str(res.run_dir),
            "best": str(res.best) if res.best else None,
            "status": res.status,
            "step": res.step,
            "val": _best_epoch(res.run_dir),
        }
        append_jsonl(results_path, record)
        results.append(record)
        write_results_md(tune_dir / "results.md", results, title)
    write_results_md(tune_dir / "results.md", results, title)
    return [{**r, "tune_dir": str(tune_dir)} for r in rank_results(results)]
