"""Sharded, streamed, resumed and threaded image scans (``detect_images``), and ``merge``:
the shards partition the files, a killed scan resumes without scoring a file twice or
missing one, a finished one scores nothing, and threads change nothing in the records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deepfake_lab.detect as detect
from deepfake_lab.detect import detect_images
from deepfake_lab.errors import UserError
from deepfake_lab.merge import merge_scans
from deepfake_lab.scan_output import read_scan_file
from deepfake_lab.scan_shard import Shard, ordered_map, parse_shard, resolve_shard, shard_of
from scan_toys import export_toy_detector, write_faces

N = 16


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    """A toy detector and a folder of N faces plus one file that does not decode."""
    root = tmp_path_factory.mktemp("shard")
    write_faces(root / "img", N)
    (root / "img" / "broken.png").write_bytes(b"not an image")
    return export_toy_detector(root / "det"), root / "img"


@pytest.fixture
def scored(monkeypatch) -> list[str]:
    """The paths the detector scores, in order (the forward passes are spied on)."""
    seen: list[str] = []
    real = detect._score_crops

    def spy(det, crops, *args):
        seen.extend(str(f) for f, *_ in crops)
        return real(det, crops, *args)

    monkeypatch.setattr(detect, "_score_crops", spy)
    return seen


def _paths(records) -> list[str]:
    return [r["path"] for r in records]


def _jsonl_records(path: Path) -> list[dict]:
    return read_scan_file(path).records


def _same_scores(a: list[dict], b: list[dict]) -> None:
    """Equal records; probabilities to 1e-6 (a batch of another size may change the last
    bits of float arithmetic)."""
    assert _paths(a) == _paths(b)
    for x, y in zip(a, b, strict=True):
        px, py = x.pop("probability"), y.pop("probability")
        assert (px is None) == (py is None) and (px is None or abs(px - py) < 1e-6), x["path"]
        assert x == y


# --- the shard rule ---------------------------------------------------------------------


def test_shard_rule_is_a_function_of_the_path_alone():
    names = [f"tree/{i:05d}.png" for i in range(400)]
    counts = np.bincount([shard_of(n, 4) for n in names], minlength=4)
    assert counts.sum() == 400 and counts.min() > 60  # spread over every shard
    # Order, and what else is listed, change nothing.
    assert [shard_of(n, 4) for n in reversed(names)] == [shard_of(n, 4) for n in names][::-1]
    assert shard_of("tree/00007.png", 4) == shard_of(Path("tree/00007.png"), 4)
    assert sum(Shard(i, 4).holds("tree/00007.png") for i in range(4)) == 1
    assert shard_of("caf\udce9.png", 3) in range(3)  # a name that is not UTF-8 hashes too


@pytest.mark.parametrize("bad", ["2/2", "-1/2", "1/0", "0", "a/b", "1/2/3", "", "0.5/2"])
def test_bad_shards_are_one_clear_error(bad):
    with pytest.raises(UserError, match="--shard must be I/N"):
        parse_shard(bad)


def test_torchrun_variables_pick_the_shard():
    assert resolve_shard(None, {"RANK": "1", "WORLD_SIZE": "3"}) == Shard(1, 3, from_env=True)
    assert resolve_shard(None, {"RANK": "0", "WORLD_SIZE": "1"}) is None
    assert resolve_shard(None, {}) is None
    assert resolve_shard("0/2", {"RANK": "1", "WORLD_SIZE": "3"}) == Shard(0, 2)
    with pytest.raises(UserError, match="RANK='3' and WORLD_SIZE='2'"):
        resolve_shard(None, {"RANK": "3", "WORLD_SIZE": "2"})


def test_ordered_map_keeps_the_order_and_raises_at_the_item():
    assert list(ordered_map(lambda x: x * x, range(50), workers=3, ahead=4)) == [
        x * x for x in range(50)
    ]

    def boom(x):
        if x == 7:
            raise ValueError("seven")
        return x

    got = []
    with pytest.raises(ValueError, match="seven"):
        for x in ordered_map(boom, range(20), workers=2):
            got.append(x)
    assert got == list(range(7))


# --- shards and merge ---------------------------------------------------------------------


def test_two_shards_partition_the_files_and_merge_into_the_unsharded_scan(inputs, tmp_path):
    det, img = inputs
    full = detect_images(det, [img], tmp_path / "full.json", device="cpu", workers=0)
    assert len(full) == N + 1 and full.shard is None
    parts = [
        detect_images(det, [img], tmp_path / f"s{i}.jsonl", device="cpu", shard=f"{i}/2")
        for i in range(2)
    ]
    p0, p1 = (set(_paths(p)) for p in parts)
    assert p0 and p1 and not p0 & p1 and p0 | p1 == set(_paths(full))
    assert parts[0].shard == "0/2" and parts[0].listed == N + 1
    res = merge_scans(
        [tmp_path / "s1.jsonl", tmp_path / "s0.jsonl"],  # any order
        tmp_path / "m.json",
        tmp_path / "m.csv",
        tmp_path / "report",
    )
    whole = json.loads((tmp_path / "full.json").read_text())
    merged = json.loads((tmp_path / "m.json").read_text())
    _same_scores(merged["results"], whole["results"])
    assert merged["counts"] == whole["counts"]
    assert merged["model_id"] == whole["model_id"] == full[0]["model_id"]
    assert merged["model"] == whole["model"]
    assert res.duplicates == res.replaced == 0
    rows = (tmp_path / "m.csv").read_text().splitlines()
    assert len(rows) == N + 2 and rows[0].endswith("sha256,model_id")
    assert "broken.png" in (tmp_path / "report" / "index.html").read_text()


def test_a_shard_can_hold_no_file(inputs, tmp_path):
    det, img = inputs
    one = img / "000.png"
    empty = next(i for i in range(5) if not Shard(i, 5).holds(one))
    records = detect_images(det, [one], tmp_path / "s.jsonl", device="cpu", shard=f"{empty}/5")
    assert list(records) == [] and records.listed == 1


def test_merge_refuses_shards_of_different_models(inputs, tmp_path):
    det, img = inputs
    other = export_toy_detector(tmp_path / "other", seed=1)
    detect_images(det, [img], tmp_path / "a.jsonl", device="cpu", shard="0/2")
    detect_images(other, [img], tmp_path / "b.jsonl", device="cpu", shard="1/2")
    with pytest.raises(UserError, match="scored with 2 different models") as exc:
        merge_scans([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], tmp_path / "m.json")
    assert "\n" not in str(exc.value) and "--model-id" in str(exc.value)
    assert not (tmp_path / "m.json").exists()


def test_merge_dedupes_and_reads_json_shards(inputs, tmp_path):
    det, img = inputs
    detect_images(det, [img], tmp_path / "a.json", device="cpu", shard="0/2")
    detect_images(det, [img], tmp_path / "b.jsonl", device="cpu", shard="1/2")
    res = merge_scans(
        [tmp_path / "a.json", tmp_path / "b.jsonl", tmp_path / "b.jsonl"], tmp_path / "m.jsonl"
    )
    assert len(res.records) == N + 1 and res.duplicates == len(_jsonl_records(tmp_path / "b.jsonl"))
    assert _paths(res.records) == sorted(_paths(res.records))
    assert _paths(_jsonl_records(tmp_path / "m.jsonl")) == _paths(res.records)


# --- streaming and resume -----------------------------------------------------------------


def test_a_rerun_with_everything_scored_scores_nothing(inputs, tmp_path, scored):
    det, img = inputs
    out = tmp_path / "s.jsonl"
    first = detect_images(det, [img], out, device="cpu")
    assert len(scored) == N and first.resumed == 0
    lines = out.read_text().splitlines()
    assert len(lines) == N + 2  # the header, then one line per file
    scored.clear()
    again = detect_images(det, [img], out, device="cpu", workers=2)
    assert scored == [] and again.resumed == N + 1  # broken.png: a verdict on its bytes too
    assert list(again) == list(first)
    assert out.read_text().splitlines() == lines  # nothing appended


def test_a_torn_last_line_is_cut_and_its_file_scored_again(inputs, tmp_path, scored):
    det, img = inputs
    out = tmp_path / "s.jsonl"
    detect_images(det, [img], out, device="cpu")
    # A scan killed mid-write: the last 6 records lost, the 7th from last cut mid-line.
    lines = out.read_bytes().splitlines(keepends=True)
    kept, torn = lines[:-7], lines[-7][:40]
    out.write_bytes(b"".join(kept) + torn)
    scored.clear()
    again = detect_images(det, [img], out, device="cpu", batch=3)
    assert again.torn_bytes == len(torn) and again.resumed == N + 1 - 7
    assert len(scored) == 7 and len(set(scored)) == 7
    stored = _jsonl_records(out)
    assert sorted(_paths(stored)) == sorted(_paths(again))  # each file once, none missing
    assert len(stored) == N + 1
    assert read_scan_file(out).torn_bytes == 0


def test_changed_bytes_and_another_model_are_scored_again(inputs, tmp_path, scored):
    det, img = inputs
    tree = tmp_path / "img"
    write_faces(tree, 6)
    out = tmp_path / "s.jsonl"
    first = {r["path"]: r for r in detect_images(det, [tree], out, device="cpu")}
    changed = tree / "000.png"
    Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(changed)
    scored.clear()
    again = detect_images(det, [tree], out, device="cpu")
    assert scored == [str(changed)] and again.resumed == 5
    new = {r["path"]: r for r in again}
    assert new[str(changed)]["sha256"] != first[str(changed)]["sha256"]
    # The same bytes under a new name: a copy of the record, not a score.
    (tree / "copy.png").write_bytes((tree / "sub" / "001.png").read_bytes())
    scored.clear()
    third = detect_images(det, [tree], out, device="cpu")
    assert scored == [] and third.resumed == 7
    copy = next(r for r in third if r["path"].endswith("copy.png"))
    assert copy["probability"] == new[str(tree / "sub" / "001.png")]["probability"]
    # Another model: every file scored again, into the same file.
    other = export_toy_detector(tmp_path / "other", seed=1)
    scored.clear()
    fourth = detect_images(other, [tree], out, device="cpu")
    assert len(scored) == 7 and fourth.resumed == 0
    assert {r["model_id"] for r in fourth} != {r["model_id"] for r in third}
    with pytest.raises(UserError, match="2 different models"):
        merge_scans([out], tmp_path / "m.json")
    res = merge_scans([out], tmp_path / "m.json", model_id=fourth[0]["model_id"])
    assert _paths(res.records) == _paths(fourth)
    assert res.replaced == 0 and res.duplicates == 0


def test_a_second_scan_cannot_write_the_same_jsonl(inputs, tmp_path):
    from deepfake_lab.scan_output import JsonlStream

    det, img = inputs
    out = tmp_path / "s.jsonl"
    with JsonlStream(out, "m", {"model_id": "m"}):
        with pytest.raises(UserError, match="being written by another scan"):
            detect_images(det, [img], out, device="cpu")


# --- threads ------------------------------------------------------------------------------


@pytest.mark.parametrize("faces", [False, True])
def test_threads_give_the_records_of_the_inline_scan(inputs, tmp_path, faces):
    det, img = inputs
    if faces:  # 64 px faces, where the Haar detector finds some
        img = tmp_path / "big"
        write_faces(img, 8, size=64)
        (img / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    kw = {"device": "cpu", "faces": faces, "face_detector": "haar", "batch": 3}
    inline = detect_images(det, [img], workers=0, **kw)
    threaded = detect_images(det, [img], workers=2, **kw)
    assert list(threaded) == list(inline)
    if faces:
        labels = {r["label"] for r in inline}
        assert "error" in labels and labels & {"fake", "real"}, labels


def test_iter_image_records_in_threads_keeps_the_inline_order(inputs):
    from deepfake_lab.models.detectors.loading import load_detector

    det_path, img = inputs
    det = load_detector(det_path)
    files = sorted(img.rglob("*.png"))
    inline = list(detect.iter_image_records(det, files, batch=4))
    threaded = list(detect.iter_image_records(det, files, batch=4, workers=3))
    assert threaded == inline and [r["label"] for r in inline].count("error") == 1
