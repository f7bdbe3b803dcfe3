"""The root ``deepfake-lab`` command; each command group lives in its own module."""

from __future__ import annotations

import typer

from deepfake_lab import __version__

app = typer.Typer(
    name="deepfake-lab",
    help="Train GAN face generators and deepfake detectors, and measure both honestly.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"deepfake-lab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Train GAN face generators and deepfake detectors, and measure both honestly."""


def _register() -> None:
    # Each module defines its own commands (a group, or top-level commands merged into the
    # root); none imports this module, so the CLI has no import cycle.
    from deepfake_lab.cli import (
        data,
        demo,
        detect,
        eval,
        export,
        generate,
        train,
        tune,
        verify,
        video,
    )

    for module in (demo, detect, export, generate, verify, video):
        app.add_typer(module.commands)
    app.add_typer(data.data_app, name="data")
    app.add_typer(eval.eval_app, name="eval")
    app.add_typer(train.train_app, name="train")
    app.add_typer(tune.tune_app, name="tune")


_register()


def main() -> None:
    """Console-script entry point."""
    app()
