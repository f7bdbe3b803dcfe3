"""Helpers shared by every CLI command: user-error handling and console output."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from deepfake_lab.errors import UserError
from deepfake_lab.safe_text import for_console

F = TypeVar("F", bound=Callable[..., Any])
#: ``progress(stage, done, total)``: the callback the Python API's long functions take
#: (``total`` None when not known in advance).
StageReport = Callable[[str, int, "int | None"], None]

console = Console()
err_console = Console(stderr=True)
if not console.is_terminal and "COLUMNS" not in os.environ:
    # Piped or captured output: rich would fold every table to 80 columns, cutting names
    # into pieces that grep cannot find; a log file has room.
    console.width = 160


def handle_errors(fn: F) -> F:
    """Turn a UserError into ``error: <message>`` on stderr and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            # Messages name user files: never read them as markup.
            err_console.print(
                f"[bold red]error:[/] {for_console(str(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(2) from None
        except OSError as exc:
            # Disk full, permission denied, a path that is a file: the user can act on these.
            where = f": {exc.filename}" if exc.filename else ""
            err_console.print(
                f"[bold red]error:[/] {for_console(exc.strerror or exc)}{for_console(where)}",
                highlight=False,
            )
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def stage_progress(labels: dict[str, str], disable: bool = False) -> Iterator[StageReport]:
    """A transient rich progress display with one bar per stage, fed by the yielded callback.

    Args:
        labels: the text shown for each stage name (unknown stages show their name).
        disable: show nothing (``--no-progress``).

    Yields:
        ``report(stage, done, total)``: adds the stage's bar on first call, then updates it.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, disable=disable, transient=True) as bar:
        tasks: dict[str, Any] = {}
        last: dict[str, tuple[int, int | None]] = {}

        def report(stage: str, done: int, total: int | None) -> None:
            # A stage may start over (the frames of the next video) with another total, or
            # None (unknown: an indeterminate bar), which update() cannot set: a new bar.
            prev = last.get(stage)
            if prev is not None and (total != prev[1] or done < prev[0]):
                bar.remove_task(tasks.pop(stage))
            if stage not in tasks:
                tasks[stage] = bar.add_task(labels.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done)
            last[stage] = (done, total)

        yield report


def face_detector_option(what: str = "") -> Any:
    """``--face-detector NAME``: a face detector from the registry (default ``yunet``).

    ``what`` replaces the help's opening words (default ``"Face detector: "``). Pair it with
    :func:`old_face_detector_option` and :func:`pick_face_detector`.
    """
    from deepfake_lab.faces.detectors import FACE_DETECTORS

    return typer.Option(
        "yunet",
        "--face-detector",
        help=f"{what or 'Face detector: '}{' | '.join(FACE_DETECTORS.names())}.",
    )


def old_face_detector_option() -> Any:
    """The old spelling ``--detector`` of ``--face-detector``, hidden, still accepted."""
    return typer.Option(None, "--detector", hidden=True, help="Old name of --face-detector.")


def pick_face_detector(face_detector: str, old: str | None) -> str:
    """The face detector asked for: ``--face-detector``, or the old ``--detector`` if given."""
    return old if old is not None else face_detector


#: Registry names shown in ``--help``. Spelt out here so that ``--help`` does not import
#: torch; ``tests/cli/test_cli_common.py`` checks them against the registries.
GAN_ARCHS = ("dcgan", "fastgan", "stylegan2", "vae")
#: Detectors ``train detector`` can train (``fusion`` has ``train fusion``).
DETECTOR_ARCHS = (
    "gan-d",
    "meso4",
    "mesoinception",
    "npr",
    "phase",
    "resnet",
    "resnet-cifar",
    "spectrum",
)


def gan_arch_option() -> Any:
    """``--arch NAME``: a GAN architecture (``model.arch``)."""
    return typer.Option(
        None, "--arch", help=f"GAN architecture (model.arch): {' | '.join(GAN_ARCHS)}."
    )


def detector_arch_option(default: str | None = None, what: str = "Detector architecture") -> Any:
    """``--arch NAME``: a detector architecture (``model.arch``). Pair it with
    :func:`old_arch_option`, and :func:`pick_arch` to read the two."""
    return typer.Option(
        default, "--arch", help=f"{what} (model.arch): {' | '.join(DETECTOR_ARCHS)}."
    )


def old_arch_option() -> Any:
    """The old spelling ``--model`` of a detector's ``--arch``, hidden, still accepted."""
    return typer.Option(None, "--model", hidden=True, help="Old name of --arch.")


def pick_arch(arch: str | None, old: str | None) -> str | None:
    """The architecture asked for: ``--arch``, or the old ``--model`` if given."""
    return old if old is not None else arch


def device_option(default: str | None = "auto", note: str = "") -> Any:
    """``--device``: where to run (``auto`` picks CUDA when present); ``note`` adds to the help."""
    return typer.Option(default, "--device", help=f"auto | cpu | cuda | cuda:N | mps{note}.")


def no_progress_option() -> Any:
    """``--no-progress``: hide progress bars (logs and results are unchanged)."""
    return typer.Option(False, "--no-progress", help="Hide progress bars.")


# --- options many commands share: one flag name, type and wording each --------------------


def config_option(what: str = "YAML config file") -> Any:
    """``--config FILE``: a YAML config (read before the flags and ``--set``)."""
    return typer.Option(None, "--config", help=f"{what}.")


def set_option(what: str = "Config override") -> Any:
    """``--set KEY=VALUE`` (repeatable): a config override, the value read as YAML."""
    return typer.Option([], "--set", help=f"{what} section.key=value (repeatable).")


def seed_option(default: int | None = 0, what: str = "Seed of everything random") -> Any:
    """``--seed N``: the one seed of the command (``None``: the config's)."""
    return typer.Option(default, "--seed", help=f"{what}.")


def real_option(required: bool = False, what: str = "Folder of real faces (repeatable)") -> Any:
    """``--real DIR`` (repeatable): folders of real faces."""
    return typer.Option(... if required else [], "--real", help=f"{what}.")


def fake_option(required: bool = False, what: str = "Folder of fakes, one source each") -> Any:
    """``--fake DIR`` (repeatable): folders of fakes, each one source."""
    return typer.Option(... if required else [], "--fake", help=f"{what}.")


def manifest_option() -> Any:
    """``--manifest FILE``: a JSONL of path, label, source (instead of folders)."""
    return typer.Option(None, "--manifest", help="JSONL of path, label, source.")


def manifest_outside_option() -> Any:
    """``--manifest-outside``: accept manifest paths outside the manifest's folder."""
    return typer.Option(
        False,
        "--manifest-outside",
        help="Accept manifest paths outside the manifest's folder (refused by default).",
    )


def out_option(
    default: Path | None = Path("runs"), what: str = "Parent folder of run folders"
) -> Any:
    """``--out DIR``: the parent folder of the run folder the command creates."""
    return typer.Option(default, "--out", help=f"{what}.")


def json_option(what: str = "Also write the result as JSON here") -> Any:
    """``--json FILE``: a machine-readable copy of the result."""
    return typer.Option(None, "--json", help=f"{what}.")


def face_model_option(
    what: str = "YuNet ONNX file (default: the cache; downloaded if missing)",
) -> Any:
    """``--face-model FILE``: the face detector's model file (YuNet)."""
    return typer.Option(None, "--face-model", help=f"{what}.")


def secret_file_option(what: str = "Owner secret of the watermark's HMAC code") -> Any:
    """``--secret-file FILE``: the owner's watermark secret."""
    return typer.Option(None, "--secret-file", help=f"{what}.")


def no_watermark_option() -> Any:
    """``--no-watermark``: outputs without the invisible mark (the opt-out is recorded)."""
    return typer.Option(
        False, "--no-watermark", help="Do not embed the invisible watermark (recorded)."
    )


def watermark_strength_option() -> Any:
    """``--watermark-strength``: the mark's strength (lattice step)."""
    from deepfake_lab.provenance.watermark import DEFAULT_STRENGTH

    return typer.Option(
        DEFAULT_STRENGTH, "--watermark-strength", help="Higher: more robust, more visible."
    )
