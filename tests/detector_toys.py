"""A toy real/fake image set and a tiny trained detector run, for detector-facing tests.

Real: 16 px procedural faces; fake: other faces made blocky by nearest-neighbour 2x
up-sampling (the artefact detectors are meant to find). Same pattern as
``tests/training/test_detector.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from deepfake_lab.data.procedural import render_faces


def make_toy_sets(root: Path, n: int = 24) -> Path:
    """Write ``root/real`` and ``root/fake`` with ``n`` 16 px PNGs each; returns ``root``."""
    (root / "real").mkdir(parents=True)
    (root / "fake").mkdir()
    for i, im in enumerate(render_faces(n, 16, seed=0)):
        Image.fromarray(im).save(root / "real" / f"{i:03d}.png")
    for i, im in enumerate(render_faces(n, 16, seed=7)):
        blocky = np.repeat(np.repeat(im[::2, ::2], 2, 0), 2, 1)
        Image.fromarray(blocky).save(root / "fake" / f"{i:03d}.png")
    return root


def run_toy_training(
    sets: Path,
    out: Path,
    name: str,
    epochs: int,
    model: str = "npr",
    kwargs: str | None = "{width: 8}",
    extra: tuple[str, ...] | list[str] = (),
    **options,
):
    """Train ``model`` at 16 px, batch 16, on ``sets/real`` vs ``sets/fake`` into ``out``;
    ``extra`` overrides and ``options`` (``resume``, ``adv_train``) pass through. Returns the
    ``DetectorResult``."""
    from deepfake_lab.training.detector_launch import train_detector

    overrides = ["train.batch=16", *extra] + ([f"model.kwargs={kwargs}"] if kwargs else [])
    return train_detector(
        [sets / "real"],
        [sets / "fake"],
        model=model,
        size=16,
        epochs=epochs,
        out=out,
        name=name,
        progress=False,
        tensorboard=False,
        overrides=overrides,
        **options,
    )


def train_toy(root: Path, model: str = "npr", epochs: int = 2, kwargs: str = "{width: 8}") -> Path:
    """Train ``model`` at 16 px on ``make_toy_sets(root)``; returns the run folder."""
    res = run_toy_training(root, root / "runs", model, epochs, model, kwargs)
    assert res.status == "done" and res.best is not None
    return res.run_dir
