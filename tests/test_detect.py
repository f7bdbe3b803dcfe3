"""``deepfake-lab detect``: Grad-CAM overlays, face crops, unreadable files, user errors."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import shared_path
from deepfake_lab.cli.app import app
from deepfake_lab.detect import detect_images
from detector_toys import make_toy_sets, train_toy

runner = CliRunner()
PORTRAITS = ("001.jpg", "004.jpg", "005.jpg")  # both detectors find these faces


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    root = make_toy_sets(tmp_path_factory.mktemp("toy"), n=16)
    return root, train_toy(root, epochs=1)


def _no_face_image(path):
    """A smooth colour gradient: nothing a face detector should call a face."""
    ramp = np.linspace(0, 255, 160, dtype=np.uint8)
    img = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 128 - ramp[None, :] // 2), -1)
    Image.fromarray(img.astype(np.uint8)).save(path)
    return path


def test_explain_writes_one_overlay_per_image_and_records_it(toy_run, tmp_path):
    root, run = toy_run
    # Same file names in two folders: the overlay names must not collide.
    (tmp_path / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "cam"
    args = [
        "detect",
        str(run),
        str(root / "real"),
        str(root / "fake"),
        str(tmp_path / "broken.png"),
    ]
    args += ["--explain", str(out), "--json", str(tmp_path / "d.json")]
    res = runner.invoke(app, [*args, "--csv", str(tmp_path / "d.csv"), "--batch", "7"])
    assert res.exit_code == 0, res.output
    assert "Grad-CAM overlays in" in res.output and "1 unreadable" in res.output
    d = json.loads((tmp_path / "d.json").read_text())
    scored = [r for r in d["results"] if r["label"] in ("fake", "real")]
    assert len(scored) == 32 and d["explain_dir"] == str(out)
    written = sorted(p.name for p in out.iterdir())
    # Named after the path below the inputs' common folder (here tmp_path's parent).
    assert len(written) == 32 and f"{root.name}__real__000.png.gradcam.png" in written
    assert f"{root.name}__fake__000.png.gradcam.png" in written
    for r in scored:
        png = np.asarray(Image.open(r["explain"]))
        assert png.shape == (256, 256, 3)  # 16 px crops enlarged for viewing
    broken = next(r for r in d["results"] if r["path"].endswith("broken.png"))
    assert broken["label"] == "error" and broken["explain"] is None and broken["error"]
    rows = list(csv.DictReader(open(tmp_path / "d.csv")))
    assert len(rows) == 33
    assert {r["explain"] for r in rows if r["label"] != "error"} == {r["explain"] for r in scored}


def test_explain_scores_like_a_plain_scan(toy_run, tmp_path):
    root, run = toy_run
    plain = detect_images(run, [root / "fake"], device="cpu")
    cam = detect_images(run, [root / "fake"], device="cpu", explain_dir=tmp_path / "cam")
    assert [r["label"] for r in plain] == [r["label"] for r in cam]
    assert np.allclose([r["probability"] for r in plain], [r["probability"] for r in cam])


def test_explain_with_a_spectrum_detector_is_refused_up_front(toy_run, tmp_path):
    root, _ = toy_run
    run = train_toy(root, model="spectrum", epochs=1, kwargs="{bins: 8}")
    res = runner.invoke(app, ["detect", str(run), str(root / "real"), "--explain", str(tmp_path)])
    assert res.exit_code == 2 and "no spatial feature map" in res.output
    assert "Traceback" not in res.output and not list(tmp_path.iterdir())
    res = runner.invoke(app, ["detect", str(run), str(root / "real")])  # without --explain: fine
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("detector", ["yunet", "haar"])
def test_faces_crops_faces_and_reports_images_without_one(toy_run, tmp_path, detector):
    _, run = toy_run
    portraits = shared_path("data", "portraits-cc0-256")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in PORTRAITS:
        shutil.copy(portraits / name, folder / name)
    _no_face_image(folder / "gradient.png")
    args = ["detect", str(run), str(folder), "--faces", "--detector", detector]
    if detector == "yunet":
        args += ["--face-model", str(shared_path("models", "face_detection_yunet.onnx"))]
    res = runner.invoke(app, [*args, "--json", str(tmp_path / "d.json")])
    assert res.exit_code == 0, res.output
    assert "1 without a face" in res.output
    d = json.loads((tmp_path / "d.json").read_text())
    assert d["faces"]["detector"] == detector and d["counts"]["no_face"] == 1
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in d["results"]}
    none = by_name["gradient.png"]
    assert none["label"] == "no_face" and none["probability"] is None and none["face_box"] is None
    found = [by_name[n] for n in PORTRAITS if by_name[n]["label"] != "no_face"]
    assert len(found) == 3
    for r in found:
        x, y, w, h = r["face_box"]
        assert r["label"] in ("fake", "real") and 0 <= r["probability"] <= 1
        assert w > 20 and h > 20 and -w < x < 256 and -h < y < 256 and r["face_score"] > 0


def test_corrupt_file_is_reported_and_missing_path_is_an_error(toy_run, tmp_path):
    root, run = toy_run
    folder = tmp_path / "mixed"
    shutil.copytree(root / "real", folder)
    (folder / "zz-corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    res = runner.invoke(app, ["detect", str(run), str(folder), "--json", str(tmp_path / "d.json")])
    assert res.exit_code == 0, res.output
    d = json.loads((tmp_path / "d.json").read_text())
    bad = [r for r in d["results"] if r["label"] == "error"]
    assert [r["path"] for r in bad] == [str(folder / "zz-corrupt.jpg")] and bad[0]["error"]
    assert d["counts"]["error"] == 1 and len(d["results"]) == 17

    res = runner.invoke(app, ["detect", str(run), str(tmp_path / "missing")])
    assert res.exit_code == 2 and "not found" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


def test_scan_reports_our_watermark_beside_the_score(toy_run, tmp_path):
    from deepfake_lab.data.procedural import render_faces
    from deepfake_lab.provenance.watermark import embed, make_payload

    root, run = toy_run
    folder = tmp_path / "scan"
    folder.mkdir()
    face = render_faces(1, 64, seed=3)[0]
    Image.fromarray(embed(face, make_payload("ab" * 32))).save(folder / "marked.png")
    Image.fromarray(face).save(folder / "unmarked.png")
    res = runner.invoke(app, ["detect", str(run), str(folder), "--csv", str(tmp_path / "d.csv")])
    assert res.exit_code == 0, res.output
    assert "1 carry this tool's watermark" in " ".join(res.output.split())
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(open(tmp_path / "d.csv"))}
    assert rows["marked.png"]["watermark"] == "True"
    assert rows["marked.png"]["watermark_fingerprint"] == "abababab"
    assert rows["unmarked.png"]["watermark"] == "False"
    assert rows["marked.png"]["probability"]  # still scored by the detector
