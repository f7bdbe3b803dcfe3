"""CLI end to end at 16 px: train, resume, generate, export, load back; user errors."""

import json

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

from deepfake_lab.cli.app import app
from deepfake_lab.models.generators.loading import load_generator
from deepfake_lab.models.latents import latents_for_seeds

runner = CliRunner()
TINY = [
    "--set",
    "model.z_dim=16",
    "--set",
    "model.g_channels=8",
    "--set",
    "model.d_channels=8",
    "--set",
    "model.max_channels=32",
    "--set",
    "schedule.grid=2",
    "--no-progress",
]


def _train(tmp_path, data, *extra):
    args = [
        "train",
        "gan",
        "--data",
        str(data),
        "--arch",
        "dcgan",
        "--size",
        "16",
        "--kimg",
        "0.016",
        "--batch",
        "4",
        "--out",
        str(tmp_path / "runs"),
        "--name",
        "cli",
        *TINY,
        *extra,
    ]
    return runner.invoke(app, args)


def test_train_generate_export_roundtrip(tmp_path, tiny_faces):
    res = _train(tmp_path, tiny_faces)
    assert res.exit_code == 0, res.output
    run = tmp_path / "runs" / "00000-cli"
    assert (run / "index.html").is_file() and (run / "loss_curves.png").is_file()
    # Training's sample grids are generated images too: marked and tagged.
    from deepfake_lab.provenance.verify import verify_images

    grids = verify_images(sorted((run / "samples").glob("grid-*.png")), search=False)
    assert grids and all(g["watermark"] and g["metadata"]["ai_generated"] for g in grids)

    out = tmp_path / "gen"
    res = runner.invoke(
        app,
        [
            "generate",
            str(run),
            "--num",
            "5",
            "--out",
            str(out),
            "--seed",
            "7",
            "--grid",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "generate.json").read_text())
    assert [r["seed"] for r in manifest["images"]] == [7, 8, 9, 10, 11]
    assert manifest["model"]["arch"] == "dcgan" and len(manifest["model"]["weights_sha256"]) == 64
    img = Image.open(out / "seed00000009.png")
    assert img.size == (16, 16) and img.mode == "RGB"
    assert (out / "grid.png").is_file()

    exp = tmp_path / "export"
    res = runner.invoke(app, ["export", str(run), "--out", str(exp)])
    assert res.exit_code == 0, res.output
    assert (exp / "model.safetensors").is_file()
    meta = json.loads((exp / "config.json").read_text())
    assert meta["weights_sha256"] == manifest["model"]["weights_sha256"]
    a, b = load_generator(exp).model, load_generator(run).model
    z = latents_for_seeds([1, 2], a.z_dim)
    with torch.no_grad():
        assert torch.equal(a(z), b(z))

    # Generating from the export gives the same pixels as from the run.
    out2 = tmp_path / "gen2"
    assert (
        runner.invoke(
            app,
            [
                "generate",
                str(exp),
                "--num",
                "5",
                "--out",
                str(out2),
                "--seed",
                "7",
                "--device",
                "cpu",
            ],
        ).exit_code
        == 0
    )
    # Same pixels (the mark included) from the export as from the run; the metadata differs
    # only in its creation time and source name.
    a, b = (np.asarray(Image.open(d / "seed00000009.png")) for d in (out2, out))
    assert np.array_equal(a, b)


def test_resume_auto_extends_the_run(tmp_path, tiny_faces):
    assert _train(tmp_path, tiny_faces).exit_code == 0
    res = _train(tmp_path, tiny_faces, "--resume", "auto", "--kimg", "0.032")
    assert res.exit_code == 0, res.output
    assert "resumed at kimg 0.016" in (tmp_path / "runs" / "00000-cli" / "log.txt").read_text()
    assert not (tmp_path / "runs" / "00001-cli").exists()


def test_user_errors_are_one_line_and_exit_2(tmp_path, tiny_faces):
    cases = [
        (["train", "gan", "--data", str(tmp_path / "missing")], "dataset folder not found"),
        (
            ["train", "gan", "--data", str(tiny_faces), "--set", "train.bach=3"],
            "unknown key 'train.bach'",
        ),
        (
            [
                "train",
                "gan",
                "--data",
                str(tiny_faces),
                "--arch",
                "nope",
                "--size",
                "16",
                "--out",
                str(tmp_path / "r"),
            ],
            "'model.arch': unknown architecture 'nope'; choose one of: dcgan, fastgan",
        ),
        (["generate", str(tmp_path / "nothing"), "--out", str(tmp_path / "g")], "not found"),
        (["export", str(tiny_faces), "--out", str(tmp_path / "e")], "no checkpoint found"),
    ]
    for args, message in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output and "Traceback" not in res.output


def test_bad_exports_and_outputs_are_user_errors(tmp_path, tiny_faces):
    assert _train(tmp_path, tiny_faces).exit_code == 0
    run = tmp_path / "runs" / "00000-cli"
    exp = tmp_path / "export"
    assert runner.invoke(app, ["export", str(run), "--out", str(exp)]).exit_code == 0
    # Exporting again into the same folder would overwrite it: refused, files untouched.
    before = (exp / "model.safetensors").read_bytes()
    res = runner.invoke(app, ["export", str(run), "--out", str(exp)])
    assert res.exit_code == 2 and "not empty" in res.output
    assert (exp / "model.safetensors").read_bytes() == before

    def gen(src, *extra):
        out = tmp_path / f"g{len(list(tmp_path.iterdir()))}"
        return runner.invoke(app, ["generate", str(src), "--out", str(out), *extra])

    tampered = tmp_path / "tampered"
    tampered.mkdir()
    (tampered / "config.json").write_text((exp / "config.json").read_text())
    blob = bytearray(before)
    blob[-1] ^= 0xFF  # flip bits in the last weight
    (tampered / "model.safetensors").write_bytes(bytes(blob))
    cases = [
        (gen(tampered), "does not match the fingerprint"),
        (gen(run, "--batch", "0"), "--batch must be at least 1"),
        (gen(run, "--truncation", "1.5"), "--truncation must be in [0, 1]"),
    ]
    (tampered / "model.safetensors").write_bytes(b"not safetensors")
    cases.append((gen(tampered), "cannot be read"))
    (tampered / "config.json").write_text("{not json")
    cases.append((gen(tampered), "not valid JSON"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases.append(
        (
            runner.invoke(
                app,
                ["train", "gan", "--data", str(tiny_faces), "--out", str(afile), "--size", "16"],
            ),
            "is a file",
        )
    )
    for res, message in cases:
        assert res.exit_code == 2, res.output
        assert message in res.output and "Traceback" not in res.output
