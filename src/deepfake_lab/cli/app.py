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
    # Imported here so that each module can add its commands to ``app``.
    from deepfake_lab.cli import (  # noqa: F401
        data,
        demo,
        detect,
        eval,
        eval_cross,
        eval_resistance,
        export,
        generate,
        train,
        tune,
        verify,
        video,
    )


_register()


def main() -> None:
    """Console-script entry point."""
    app()
