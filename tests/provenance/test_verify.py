"""``generate`` marks every image; ``verify`` reads watermark, metadata and C2PA back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deepfake_lab.cli.app import app
from deepfake_lab.generate import generate_images
from deepfake_lab.provenance.marking import SECRET_ENV, ProvenanceOptions
from deepfake_lab.provenance.verify import verify_images
from tiny_configs import tiny_generator_export

runner = CliRunner()
KEYS = {"path", "watermark", "payload", "bit_errors", "metadata", "c2pa"}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return tiny_generator_export(tmp_path_factory.mktemp("gen") / "export", size=32)


def test_generated_images_carry_mark_and_tags_and_verify_reads_them(export, tmp_path):
    (tmp_path / "secret").write_bytes(b"owner secret")
    options = ProvenanceOptions(secret_file=tmp_path / "secret")
    manifest = generate_images(
        export, 3, tmp_path / "out", seed=4, grid=True, provenance=options, device="cpu"
    )
    prov = manifest["provenance"]
    assert prov["watermark"] and prov["payload"]["keyed"] and not prov["c2pa_signed"]
    fp = manifest["model"]["weights_sha256"][:8]
    assert prov["payload"]["fingerprint"] == fp
    (tmp_path / "real.png").write_bytes((tmp_path / "out" / "seed00000004.png").read_bytes())
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(tmp_path / "plain.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    res = runner.invoke(
        app,
        [
            "verify",
            str(tmp_path / "out"),
            str(tmp_path / "plain.png"),
            str(tmp_path / "broken.png"),
            "--json",
            str(tmp_path / "v.json"),
            "--secret-file",
            str(tmp_path / "secret"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "4 of 6 carry the deepfake-lab watermark" in " ".join(res.output.split())
    recs = {
        r["path"].rsplit("/", 1)[-1]: r
        for r in json.loads((tmp_path / "v.json").read_text())["results"]
    }
    for name in ("seed00000004.png", "seed00000005.png", "seed00000006.png", "grid.png"):
        r = recs[name]
        assert KEYS <= set(r) and r["watermark"], name
        assert r["payload"]["fingerprint"] == fp and r["payload"]["code_valid"] is True
        assert r["bit_errors"] <= r["budget"]
        assert r["metadata"]["ai_generated"] and r["metadata"]["watermarked"] is True
        assert r["metadata"]["weights_sha256"] == manifest["model"]["weights_sha256"]
    assert recs["seed00000005.png"]["metadata"]["seed"] == 5
    plain = recs["plain.png"]
    assert not plain["watermark"] and plain["payload"] is None and plain["verdict"] == "none found"
    assert not plain["metadata"]["ai_generated"]
    assert "error" in recs["broken.png"] and recs["broken.png"]["verdict"] == "unreadable"


def test_a_wrong_secret_is_reported(export, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "the real owner")
    generate_images(export, 1, tmp_path / "out", device="cpu")
    (tmp_path / "wrong").write_bytes(b"an impostor")
    [r] = verify_images([tmp_path / "out" / "seed00000000.png"], secret_file=tmp_path / "wrong")
    assert r["watermark"] and r["payload"]["keyed"] and r["payload"]["code_valid"] is False


def test_no_watermark_is_explicit_and_recorded(export, tmp_path):
    res = runner.invoke(
        app, ["generate", str(export), "--num", "2", "--out", str(tmp_path / "o"), "--no-watermark"]
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "o" / "generate.json").read_text())
    assert manifest["provenance"]["watermark"] is False
    assert manifest["provenance"]["opted_out"] == "--no-watermark"
    [r, _] = verify_images([tmp_path / "o"])
    assert not r["watermark"]
    assert r["metadata"]["ai_generated"] and r["metadata"]["watermarked"] is False  # still tagged


def test_signed_generation_carries_valid_c2pa(export, tmp_path):
    pytest.importorskip("c2pa")
    from deepfake_lab.provenance.c2pa import TEST_CA_FILENAME, make_test_credentials

    creds = make_test_credentials(tmp_path / "keys")
    res = runner.invoke(
        app,
        [
            "generate",
            str(export),
            "--num",
            "1",
            "--out",
            str(tmp_path / "o"),
            "--sign-key",
            str(creds.private_key),
            "--sign-cert",
            str(creds.cert_chain),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "not signed" not in res.output
    trust = tmp_path / "keys" / TEST_CA_FILENAME
    [r] = verify_images([tmp_path / "o" / "seed00000000.png"], trust_anchors=trust)
    assert r["watermark"] and r["c2pa"]["valid"] and r["c2pa"]["trusted"]
    assert r["c2pa"]["ai_generated"]
    assert r["c2pa"]["generator"]["weights_sha256"] == r["metadata"]["weights_sha256"]


def test_user_mistakes_are_one_line_errors(export, tmp_path):
    res = runner.invoke(app, ["verify", str(tmp_path / "missing.png")])
    assert res.exit_code == 2 and "not found" in res.output and "Traceback" not in res.output
    res = runner.invoke(
        app, ["generate", str(export), "--out", str(tmp_path / "o"), "--sign-key", "k.pem"]
    )
    assert res.exit_code == 2 and "both --sign-key and --sign-cert" in res.output
    assert not (tmp_path / "o").exists()  # refused before anything was written
