"""``detect --shard/--json X.jsonl/--workers`` and ``merge`` through the real CLI: one-line
errors, torchrun's variables, a scan killed with SIGKILL mid-line and resumed, and hostile
file names through ``merge``."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepfake_lab.cli.app import app
from deepfake_lab.scan_output import read_scan_file
from scan_toys import export_toy_detector, write_faces

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
N = 12


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("shard-cli")
    write_faces(root / "img", N)
    return export_toy_detector(root / "det"), root / "img"


def _detect(det: Path, *args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, ["detect", str(det), *args, "--no-progress"], env=env)


@pytest.mark.parametrize("bad", ["2/2", "-1/2", "1/0", "x", "3"])
def test_a_bad_shard_is_one_error_line(inputs, tmp_path, bad):
    det, img = inputs
    res = _detect(det, str(img), "--shard", bad, "--json", str(tmp_path / "s.jsonl"))
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --shard must be I/N"), res.output
    assert "Traceback" not in res.output and not (tmp_path / "s.jsonl").exists()


def test_torchrun_variables_pick_the_shard_and_name_the_outputs(inputs, tmp_path):
    det, img = inputs
    env = {"RANK": "1", "WORLD_SIZE": "2"}
    out = tmp_path / "s.jsonl"
    res = _detect(
        det, str(img), "--json", str(out), "--csv", str(tmp_path / "s-{shard}.csv"), env=env
    )
    assert res.exit_code == 0, res.output
    assert "torchrun: this process scans shard 1/2 (RANK/WORLD_SIZE)" in res.output
    assert not out.exists() and (tmp_path / "s-1-of-2.csv").is_file()
    assert f"shard 1/2: {len(read_scan_file(tmp_path / 's.1-of-2.jsonl').records)} of {N}" in (
        " ".join(res.output.split())
    )
    bad = _detect(det, str(img), env={"RANK": "2", "WORLD_SIZE": "2"})
    assert bad.exit_code == 2 and "do not make a shard" in bad.output


_KILLED_SCAN = """
import os, signal, sys
import deepfake_lab.scan_output as so
from deepfake_lab.cli.app import app

real, written = so.JsonlStream.write, []

def write(self, record):
    if len(written) == int(os.environ["KILL_AFTER"]):  # die in the middle of a line
        self._fh.write(so._line(record).encode()[:25])
        self._fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    real(self, record)
    written.append(record["path"])

so.JsonlStream.write = write
sys.argv = ["deepfake-lab", *sys.argv[1:]]
app()
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_scan_killed_mid_line_resumes_without_scoring_a_file_twice(inputs, tmp_path):
    det, img = inputs
    out = tmp_path / "s.jsonl"
    env = {**os.environ, "KILL_AFTER": "5", "PYTHONPATH": str(ROOT / "src")}
    args = ["detect", str(det), str(img), "--json", str(out), "--batch", "2", "--no-progress"]
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_SCAN, *args], env=env, capture_output=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    killed = read_scan_file(out)
    assert len(killed.records) == 5 and killed.torn_bytes == 25

    res = _detect(det, str(img), "--json", str(out), "--csv", str(tmp_path / "s.csv"))
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "ended in a line cut short" in text and "its 25 bytes were cut off" in text
    assert f"resumed: 5 of {N} images were already scored" in text
    done = read_scan_file(out)
    paths = [r["path"] for r in done.records]
    assert len(paths) == len(set(paths)) == N and done.torn_bytes == done.bad_lines == 0
    assert len(list(csv.DictReader(open(tmp_path / "s.csv")))) == N
    again = _detect(det, str(img), "--json", str(out))
    assert f"resumed: {N} of {N} images" in " ".join(again.output.split())
    assert read_scan_file(out).records == done.records


def test_merge_writes_json_csv_and_report_and_refuses_other_models(inputs, tmp_path):
    det, img = inputs
    for i in range(2):
        res = _detect(
            det, str(img), "--shard", f"{i}/2", "--json", str(tmp_path / "s{shard}.jsonl")
        )
        assert res.exit_code == 0, res.output
    shards = [str(tmp_path / f"s{i}-of-2.jsonl") for i in range(2)]
    out = tmp_path / "m"
    res = runner.invoke(
        app,
        ["merge", *shards, "--json", str(out / "m.json"), "--csv", str(out / "m.csv")]
        + ["--report", str(out / "report")],
    )
    assert res.exit_code == 0, res.output
    assert f"merged 2 shard outputs: {N} images" in " ".join(res.output.split())
    doc = json.loads((out / "m.json").read_text())
    assert doc["counts"]["real"] + doc["counts"]["fake"] == N
    assert len(list(csv.DictReader(open(out / "m.csv")))) == N
    assert (out / "report" / "index.html").read_text().count("<tr>") >= N

    other = export_toy_detector(tmp_path / "other", seed=3)
    res = _detect(other, str(img), "--shard", "0/2", "--json", str(tmp_path / "o.jsonl"))
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["merge", shards[1], str(tmp_path / "o.jsonl"), "--json", str(out / "x.json")]
    )
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert "different models" in res.output and not (out / "x.json").exists()


def test_jsonl_with_videos_is_refused_up_front(inputs, tmp_path):
    det, img = inputs
    (tmp_path / "clip.mp4").write_bytes(b"not read")
    res = _detect(det, str(img), str(tmp_path / "clip.mp4"), "--json", str(tmp_path / "s.jsonl"))
    assert res.exit_code == 2 and ".jsonl streams and resumes image scans only" in res.output
    assert not (tmp_path / "s.jsonl").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="bytes file names are POSIX")
def test_merge_keeps_hostile_names_escaped(inputs, tmp_path):
    from PIL import Image

    from deepfake_lab.data.procedural import render_faces

    det, _ = inputs
    media = tmp_path / "media"
    media.mkdir()
    names = [b"[bold red]RED", b"latin1-\xe9\xff", "bidi\u202egnp.exe".encode(), b"x$\\foo$"]
    for face, name in zip(render_faces(len(names), 16, seed=1), names, strict=True):
        Image.fromarray(face).save(os.fsdecode(os.fsencode(media) + b"/" + name + b".png"))
    shard_dir = Path(os.fsdecode(os.fsencode(tmp_path) + b"/[red]sh\xe9"))
    for i in range(2):
        res = _detect(det, str(media), "--shard", f"{i}/2", "--json", str(shard_dir / f"{i}.jsonl"))
        assert res.exit_code == 0, res.output
    # A torn last line in a shard whose name is markup: reported, escaped, left out.
    torn = shard_dir / "1.jsonl"
    torn.write_bytes(torn.read_bytes() + b'{"path": "cut')
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        ["merge", str(shard_dir / "0.jsonl"), str(torn), "--json", str(out / "m.json")]
        + ["--csv", str(out / "m.csv"), "--report", str(out / "r")],
    )
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "[red]sh\\xe9/1.jsonl: left out a last line cut short (13 bytes" in text
    assert "\udce9" not in res.output
    doc = json.loads((out / "m.json").read_text(encoding="utf-8"))
    stems = sorted(Path(r["path"]).name for r in doc["results"])
    assert stems == sorted(
        ["[bold red]RED.png", "latin1-\\xe9\\xff.png", "bidi\u202egnp.exe.png", "x$\\foo$.png"]
    )
    rows = list(csv.DictReader(open(out / "m.csv", encoding="utf-8", newline="")))
    assert [r["path"] for r in rows] == [r["path"] for r in doc["results"]]
    page = (out / "r" / "index.html").read_text(encoding="utf-8")
    assert "latin1-\\xe9\\xff.png" in page and "bidi\\u202egnp.exe.png" in page
    assert "\u202e" not in page and "[bold red]RED.png" in page
