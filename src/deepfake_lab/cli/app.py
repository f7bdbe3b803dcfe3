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
    offline: bool = typer.Option(
        False,
        "--offline",
        envvar="DEEPFAKE_LAB_OFFLINE",
        help="Never use the network: a model file missing from the cache (YuNet, MesoNet, "
        "FID Inception) is an error saying where to get it, not a download. Also "
        "DEEPFAKE_LAB_OFFLINE=1. Goes before the command: deepfake-lab --offline detect ...",
    ),
) -> None:
    """Train GAN face generators and deepfake detectors, and measure both honestly."""
    if offline:
        # Through the environment, so that the one download function sees it wherever it
        # is called from, child processes (data loader workers) included.
        from deepfake_lab.net import set_offline

        set_offline(True)


def _register() -> None:
    # Each module defines its own commands (a group, or top-level commands merged into the
    # root); none imports this module, so the CLI has no import cycle.
    from deepfake_lab.cli import (
        calibrate,
        data,
        demo,
        detect,
        eval,
        export,
        generate,
        merge,
        reconstruct,
        serve,
        train,
        tune,
        verify,
        video,
    )

    for module in (
        calibrate,
        demo,
        detect,
        export,
        generate,
        merge,
        reconstruct,
        serve,
        verify,
        video,
    ):
        app.add_typer(module.commands)
    app.add_typer(data.data_app, name="data")
    app.add_typer(eval.eval_app, name="eval")
    app.add_typer(train.train_app, name="train")
    app.add_typer(tune.tune_app, name="tune")


_register()


def main() -> None:
    """Console-script entry point."""
    app()
