"""Hostile file names through the real CLI: console markup, mathtext, 240 characters, bytes
that are not UTF-8 and bidi controls, beside entries that hold no file (a named pipe, links
that loop or lead nowhere).

Each name must be shown as it is (escaped where needed: ``\\xNN`` for an undecodable byte,
``\\u202e`` for a bidi control), nothing may crash, every output file must be written, and
the other files of the same scan must keep their results.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image
from typer.testing import CliRunner

from avtools import face_clip
from conftest import read_png
from deepfake_lab.cli.app import app
from deepfake_lab.data.procedural import render_faces
from deepfake_lab.safe_text import MAX_NAME_BYTES

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="bytes file names, FIFOs and symlinks are POSIX"
)

runner = CliRunner()

#: name (bytes, as on disk) -> how the console, HTML and the outputs' text show it.
HOSTILE = {
    b"[bold red]RED[on white]": "[bold red]RED[on white]",
    b"m[/bad]": "m[/bad]",  # a folder "m[" holding "bad]...": the closing tag crashed rich
    b"x$\\foo$": "x$\\foo$",  # mathtext: matplotlib failed on the timeline title
    b"a" * 240: "a" * 240,  # + ".png": too long for "<name>.gradcam.png" and temp names
    b"latin1-\xe9\xff": "latin1-\\xe9\\xff",  # not UTF-8
    "bidi\u202egnp.exe".encode(): "bidi\\u202egnp.exe",  # shows as "bidiexe.png" otherwise
    b"plain": "plain",
}
NOT_FILES = ("fifo", "loop-a", "loop-b", "dangling")


def _bytes_path(folder: Path, name: bytes) -> Path:
    return Path(os.fsdecode(os.path.join(os.fsencode(folder), name)))


@pytest.fixture(scope="module")
def scan_inputs(tmp_path_factory):
    """A tiny untrained detector export and a folder of images and 4-frame videos named as
    in :data:`HOSTILE`, plus a FIFO, a symlink loop and a dangling link of each kind."""
    import torch
    from safetensors.torch import save_file

    from deepfake_lab.hashing import weights_sha256
    from deepfake_lab.models.detectors import DETECTORS
    from deepfake_lab.models.export_format import DETECTOR_FORMAT

    root = tmp_path_factory.mktemp("hostile")
    torch.manual_seed(0)
    kwargs = {"size": 16, "width": 8}
    state = {k: v.contiguous() for k, v in DETECTORS.build("npr", **kwargs).state_dict().items()}
    det = root / "det"
    det.mkdir()
    save_file(state, str(det / "model.safetensors"))
    meta = {"format": DETECTOR_FORMAT, "name": "npr", "kwargs": kwargs}
    meta["weights_sha256"] = weights_sha256(state)
    (det / "config.json").write_text(json.dumps(meta))

    media = root / "media"
    faces = render_faces(len(HOSTILE), 32, seed=0)
    for face, name in zip(faces, HOSTILE, strict=True):
        image = _bytes_path(media, name + b".png")
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).save(image)
        face_clip(_bytes_path(media, name + b".mp4"), face, frames=4)
    for suffix in (".png", ".mp4"):
        os.mkfifo(media / f"fifo{suffix}")
        os.symlink(f"loop-b{suffix}", media / f"loop-a{suffix}")
        os.symlink(f"loop-a{suffix}", media / f"loop-b{suffix}")
        os.symlink(f"nowhere{suffix}", media / f"dangling{suffix}")
    return det, media


def _stem(path: str) -> str:
    """The file name of a record's path, less its suffix."""
    return Path(path).name.rsplit(".", 1)[0]


def test_detect_shows_writes_and_scores_every_hostile_name(scan_inputs, tmp_path):
    det, media = scan_inputs
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        [
            "detect",
            str(det),
            str(media),
            "--json",
            str(out / "d.json"),
            "--csv",
            str(out / "d.csv"),
            "--report",
            str(out / "report"),
            "--explain",
            str(out / "gradcam"),
            "--face-detector",
            "haar",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert res.exception is None and "Traceback" not in res.output
    text = " ".join(res.output.split())

    # Console: each name as it is, never read as markup; hidden characters as escapes.
    for shown in HOSTILE.values():
        if len(shown) < 100:  # the long one is cut by the table's width
            assert f"{shown}.png" in text, shown
    for shown in ("[bold red]RED[on white].mp4", "latin1-\\xe9\\xff.mp4", "x$\\foo$.mp4"):
        assert shown in text
    assert "\u202e" not in res.output and "\udce9" not in res.output
    for name in NOT_FILES:
        assert f"{name}.png: skipped:" in text and f"{name}.mp4: skipped:" in text
    assert "fifo.png: skipped: a FIFO (named pipe), not a regular file" in text
    assert "loop-a.mp4: skipped: a symbolic link that loops" in text
    assert "dangling.png: skipped: a dangling symbolic link" in text
    assert "; 4 skipped (no file there" in text  # images, and videos

    # JSON and CSV: every file, the names with undecodable bytes as \xNN.
    doc = json.loads((out / "d.json").read_text(encoding="utf-8"))
    images = {_stem(r["path"]): r for r in doc["results"]}
    videos = {_stem(r["path"]): r for r in doc["videos"]}
    stems = {s.rsplit("/", 1)[-1] for s in HOSTILE.values()}
    stems = {s.replace("\\u202e", "\u202e") for s in stems}  # JSON keeps it: data
    assert set(images) == set(videos) == stems | set(NOT_FILES)
    assert doc["counts"]["skipped"] == 4 and "interrupted" not in doc
    for stem in stems:  # the other files keep their results
        assert images[stem]["label"] in ("fake", "real"), images[stem]
        assert videos[stem]["label"] in ("no_face", "fake", "real"), videos[stem]
    for stem in NOT_FILES:
        assert images[stem]["label"] == videos[stem]["label"] == "skipped"
    rows = list(csv.DictReader(open(out / "d.csv", encoding="utf-8", newline="")))
    assert [r["path"] for r in rows] == [r["path"] for r in doc["results"]]
    assert any(r["path"].endswith("latin1-\\xe9\\xff.png") for r in rows)

    # Grad-CAM overlays and timelines: one each, under short UTF-8 names.
    for stem in stems:
        read_png(images[stem]["explain"])
        read_png(videos[stem]["timeline"])
    for folder in (out / "gradcam", out / "report"):
        for raw in os.listdir(os.fsencode(folder)):
            raw.decode("utf-8")  # strict: no undecodable byte copied into an output name
            assert len(raw) <= MAX_NAME_BYTES, raw

    # HTML: the names escaped and visible, every picture linked to a file that exists.
    page = (out / "report" / "index.html").read_text(encoding="utf-8")
    for shown in ("[bold red]RED[on white].mp4", "latin1-\\xe9\\xff.mp4", "bidi\\u202egnp.exe"):
        assert shown in page
    assert "\u202e" not in page and "x$\\foo$.mp4: P(fake) over time" in page
    links = re.findall(r'<img src="([^"]+)"', page)
    assert len(links) == len(stems)
    for link in links:
        assert (out / "report" / unquote(link)).is_file(), link


def test_verify_shows_every_hostile_name_and_skips_what_holds_no_file(scan_inputs, tmp_path):
    _, media = scan_inputs
    res = runner.invoke(app, ["verify", str(media), "--json", str(tmp_path / "v.json")])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    for shown in ("[bold red]RED[on white].png", "m[/bad].png", "latin1-\\xe9\\xff.png"):
        assert shown in text
    assert "bidi\\u202egnp.exe.mp4" in text and "\u202e" not in res.output
    assert "fifo.png: skipped: a FIFO (named pipe)" in text
    assert "fifo.mp4: a FIFO (named pipe)" in text
    assert "0 of 11 carry the deepfake-lab watermark; 4 skipped" in text
    doc = json.loads((tmp_path / "v.json").read_text(encoding="utf-8"))
    verdicts = {_stem(r["path"]): r["verdict"] for r in doc["results"] + doc["videos"]}
    assert {verdicts[n] for n in NOT_FILES} == {"skipped"}
    assert verdicts["plain"] == "none found" and verdicts["latin1-\\xe9\\xff"] == "none found"


def test_av_sync_says_what_a_fifo_or_a_link_is(scan_inputs):
    _, media = scan_inputs
    for name, what in (("fifo", "a FIFO (named pipe)"), ("loop-a", "a symbolic link that loops")):
        res = runner.invoke(app, ["av-sync", str(media / f"{name}.mp4"), "--no-progress"])
        assert res.exit_code == 2 and what in res.output, res.output
        assert "not found" not in res.output


def test_one_failing_picture_or_video_costs_that_file_only(scan_inputs, tmp_path, monkeypatch):
    """A timeline that cannot be drawn and a video whose scan fails unexpectedly: the other
    videos keep their results and pictures, the JSON and the report are written."""
    import deepfake_lab.video.detect_video as dv

    real_plot, real_scan = dv.plot_timeline, dv.scan_video

    def plot(tracks, threshold, path, title=None):
        if title.startswith("plain"):
            raise ValueError("cannot draw this title")
        return real_plot(tracks, threshold, path, title=title)

    def scan(video, *args, **kwargs):
        if Path(video).name.startswith("[bold"):
            raise RuntimeError("a decoder surprise")
        return real_scan(video, *args, **kwargs)

    monkeypatch.setattr(dv, "plot_timeline", plot)
    monkeypatch.setattr(dv, "scan_video", scan)
    _, media = scan_inputs
    clips = [media / "plain.mp4", media / "[bold red]RED[on white].mp4", media / "x$\\foo$.mp4"]
    out = tmp_path / "out"
    args = ["detect", str(scan_inputs[0]), *map(str, clips), "--json", str(out / "d.json")]
    res = runner.invoke(app, [*args, "--report", str(out / "r"), "--face-detector", "haar"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "plain.mp4: timeline not written: ValueError: cannot draw this title" in text
    assert "[bold red]RED[on white].mp4: not scanned:" in text and "a decoder surprise" in text
    videos = {_stem(r["path"]): r for r in json.loads((out / "d.json").read_text())["videos"]}
    assert videos["plain"]["timeline"] is None and videos["plain"]["label"] == "no_face"
    assert videos["[bold red]RED[on white]"]["label"] == "error"
    read_png(videos["x$\\foo$"]["timeline"])
    assert (out / "r" / "index.html").is_file()


def test_an_error_mid_scan_still_writes_the_images_scanned(scan_inputs, tmp_path, monkeypatch):
    import deepfake_lab.detect as detect

    batches = []

    def verdicts(det, x, logits):
        batches.append(len(x))
        if len(batches) == 2:
            raise RuntimeError("the device went away")

    monkeypatch.setattr(detect, "fusion_verdicts", verdicts)
    _, media = scan_inputs
    images = [str(media / f"{n}.png") for n in ("plain", "fifo", "x$\\foo$", "loop-a")]
    images.append(os.fsdecode(os.fsencode(media) + b"/latin1-\xe9\xff.png"))
    out = tmp_path / "d.json"
    res = runner.invoke(
        app, ["detect", str(scan_inputs[0]), *images, "--batch", "1", "--json", str(out)]
    )
    assert isinstance(res.exception, RuntimeError)
    doc = json.loads(out.read_text())
    assert doc["interrupted"] == "stopped by RuntimeError after 3 of 5 images"
    labels = sorted(r["label"] for r in doc["results"])
    assert labels == ["real", "skipped", "skipped"] or labels == ["fake", "skipped", "skipped"]


def test_entries_without_a_file_are_named_and_never_read(scan_inputs):
    """A named pipe is never opened (reading one waits for a writer, forever): decoding it
    as an image or a video fails at once, saying what it is."""
    from deepfake_lab.data.decode import DecodeError, decode_image, not_a_file
    from deepfake_lab.video.decode import VideoDecodeError, probe

    _, media = scan_inputs
    assert not_a_file(media / "plain.png") is None
    assert not_a_file(media / "missing.png") == "not found"
    assert not_a_file(media) == "a folder"
    with pytest.raises(DecodeError, match="a FIFO") as err:
        decode_image(media / "fifo.png")
    assert err.value.reason == "unreadable"
    with pytest.raises(VideoDecodeError, match="fifo.mp4: a FIFO"):
        probe(media / "fifo.mp4")
    with pytest.raises(VideoDecodeError, match="a dangling symbolic link"):
        probe(media / "dangling.mp4")


def test_a_manifest_that_is_not_utf8_names_its_files(tmp_path):
    from deepfake_lab.data.detection import read_manifest

    image = _bytes_path(tmp_path, b"caf\xe9.png")
    Image.fromarray(render_faces(1, 16)[0]).save(image)
    line = b'{"path": "caf\xe9.png", "label": "fake"}\n'  # Latin-1, as written by hand
    (tmp_path / "m.jsonl").write_bytes(line)
    (sample,) = read_manifest(tmp_path / "m.jsonl")
    assert sample.path == image and sample.path.is_file()


def test_an_error_that_names_a_markup_path_is_one_line(tmp_path):
    res = runner.invoke(app, ["detect", str(tmp_path / "m[/bad].png")])
    assert res.exit_code == 2 and f"not found: {tmp_path}/m[/bad].png" in res.output


def test_a_json_file_with_a_long_name_is_written(scan_inputs, tmp_path):
    det, media = scan_inputs
    out = tmp_path / ("j" * 245 + ".json")
    res = runner.invoke(app, ["detect", str(det), str(media / "plain.png"), "--json", str(out)])
    assert res.exit_code == 0 and out.is_file(), res.output
