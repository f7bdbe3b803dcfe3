"""Cross-source matrix: one detector per fake source, each tested on every source."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import assert_figure_shows_data
from deepfake_lab.errors import UserError
from deepfake_lab.evaluation.cross_source import cross_source_matrix, plot_matrix
from deepfake_lab.io import read_jsonl

# Augmentation off and a high rate: 9 steps must be enough to find both artefacts.
TINY = ["train.batch=16", "model.kwargs={width: 4}", "optim.lr=0.003", "augment.enabled=false"]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """30 real 16 px faces; two fake sources with different artefacts: blocky 2x2 pixels
    (nearest-neighbour up-sampling) and a +-12 checkerboard (transposed-convolution-like)."""
    from deepfake_lab.data.procedural import render_faces

    root = tmp_path_factory.mktemp("sources")
    for name in ("real", "blocky", "checker"):
        (root / name).mkdir()
    for i, im in enumerate(render_faces(30, 16, seed=0)):
        Image.fromarray(im).save(root / "real" / f"{i:03d}.png")
    for i, im in enumerate(render_faces(30, 16, seed=7)):
        blocky = np.repeat(np.repeat(im[::2, ::2], 2, 0), 2, 1)
        Image.fromarray(blocky).save(root / "blocky" / f"{i:03d}.png")
    yy, xx = np.mgrid[0:16, 0:16]
    checker = 12.0 * (((yy + xx) % 2) * 2 - 1)[..., None]
    for i, im in enumerate(render_faces(30, 16, seed=11)):
        Image.fromarray((im + checker).clip(0, 255).astype(np.uint8)).save(
            root / "checker" / f"{i:03d}.png"
        )
    return root


def test_two_sources_give_a_2x2_matrix_with_held_out_tests(sources, tmp_path):
    r = cross_source_matrix(
        sources / "real",
        {"blocky": sources / "blocky", "checker": sources / "checker"},
        model="npr",
        size=16,
        overrides=TINY,
        out=tmp_path / "runs",
        epochs=3,
        n_boot=200,
        progress=False,
    )
    assert r["sources"] == ["blocky", "checker"]
    m = np.array(r["matrix"], dtype=float)
    assert m.shape == (2, 2) and np.all((m >= 0) & (m <= 1))
    assert m[0, 0] > 0.7 and m[1, 1] > 0.7  # each detector finds its own source's artefact
    for i in range(2):
        for j in range(2):
            lo, hi = r["intervals"][i][j]
            assert lo <= m[i, j] <= hi
    run = tmp_path / "runs" / "00000-cross-source"
    assert r["run_dir"] == str(run) and (run / "cross_source.png").stat().st_size > 0
    assert json.loads((run / "cross_source.json").read_text())["matrix"] == r["matrix"]
    test_paths = {rec["path"] for rec in read_jsonl(run / "test.jsonl")}
    assert r["n_test"]["real"] >= 5 and r["n_test"]["blocky"] >= 5
    for src, folder in r["runs"].items():
        train = read_jsonl(run / f"train-{src}.jsonl")
        assert {rec["source"] for rec in train} == {"real", src}
        assert not test_paths & {rec["path"] for rec in train}  # nothing held out is trained on
        cfg = (f"{folder}/config.yaml", str(run / f"train-{src}.jsonl"))
        assert cfg[1] in open(cfg[0]).read()  # the detector trained on that manifest only


def test_bad_sources_fail_before_any_folder(sources, tmp_path):
    with pytest.raises(UserError, match="at least one"):
        cross_source_matrix(sources / "real", {}, out=tmp_path / "runs")
    with pytest.raises(UserError, match="fake folder not found"):
        cross_source_matrix(sources / "real", {"x": tmp_path / "nope"}, out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_heatmap_draws_undefined_cells(tmp_path):
    path = plot_matrix([[0.9, None], [0.4, 1.0]], ["a", "b"], tmp_path / "m.png")
    with Image.open(path) as im:
        assert im.size[0] > 100 and im.size[1] > 100
    assert_figure_shows_data(path, lambda p: plot_matrix([[None, None]] * 2, ["a", "b"], p))


def test_cli_prints_the_matrix_and_writes_json(sources, tmp_path):
    from typer.testing import CliRunner

    from deepfake_lab.cli.app import app

    args = [
        "eval",
        "cross-source",
        "--real",
        str(sources / "real"),
        "--fake",
        str(sources / "blocky"),
        "--fake",
        str(sources / "checker"),
        "--model",
        "npr",
        "--size",
        "16",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "runs"),
        "--json",
        str(tmp_path / "m.json"),
        "--no-progress",
    ]
    for o in TINY:
        args += ["--set", o]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "trained on" in res.output and "blocky" in res.output
    assert len(json.loads((tmp_path / "m.json").read_text())["matrix"]) == 2
    one = CliRunner().invoke(
        app,
        [
            "eval",
            "cross-source",
            "--real",
            str(sources / "real"),
            "--fake",
            str(sources / "blocky"),
        ],
    )
    assert one.exit_code == 2 and "at least two --fake" in one.output
