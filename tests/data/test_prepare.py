"""prepare_dataset end to end on generated folders (no detector: --no-align), plus recovery."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from deepfake_lab.data import prepare as prepare_mod
from deepfake_lab.data.prepare import prepare_dataset
from deepfake_lab.errors import UserError

SIZE = 32
MAX_PIXELS = 300 * 300


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _save(img: Image.Image, path: Path, fmt: str | None = None, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **kw)


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """A source tree with 9 usable images and 6 that must be rejected, one of each kind."""
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))

    _save(photo, src / "a_original.png")
    shutil.copy(src / "a_original.png", src / "b_copy.png")  # duplicate
    _save(Image.fromarray(np.full((40, 40), 77, np.uint8)), src / "gray.png")
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:30, 10:30] = (255, 0, 0, 255)
    _save(Image.fromarray(rgba, "RGBA"), src / "rgba.png")
    _save(photo.convert("P", palette=Image.Palette.ADAPTIVE), src / "palette.png")
    _save(Image.fromarray(np.full((40, 40), 65535 // 2, np.uint16)), src / "deep16.png")
    _save(photo, src / "photo.webp")
    _save(photo, src / "photo.bmp")
    _save(photo, src / "sub" / "dir" / "nested.jpg")

    # Displayed 40 wide x 80 tall: red top half, blue bottom half; stored turned 90 ccw
    # with EXIF orientation 6. Without the rotation the centre crop is red left / blue right.
    shown = np.zeros((80, 40, 3), np.uint8)
    shown[:40] = (255, 0, 0)
    shown[40:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    _save(Image.fromarray(shown).transpose(Image.Transpose.ROTATE_90), src / "rotated.jpg",
          exif=exif.tobytes(), quality=95)  # fmt: skip

    buf = io.BytesIO()
    photo.save(buf, "JPEG")
    jpeg = buf.getvalue()
    (src / "empty.jpg").write_bytes(b"")
    (src / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    png = bytearray((src / "a_original.png").read_bytes())
    png[len(png) // 2 : len(png) // 2 + 64] = bytes(64)
    (src / "corrupt.png").write_bytes(bytes(png))
    (src / "notes.jpg").write_text("a text file renamed .jpg\n")
    _save(Image.fromarray(np.zeros((400, 400, 3), np.uint8)), src / "huge.png")  # > MAX_PIXELS
    (src / "readme.txt").write_text("not an image suffix: ignored\n")
    _save(photo, src / ".hidden.png")
    return src


EXPECTED_REJECTED = {
    "corrupt": 1, "duplicate": 1, "empty_file": 1, "not_image": 1, "too_large": 1, "truncated": 1,
}  # fmt: skip


def _run(src: Path, out: Path, **kw):
    kw = {"size": SIZE, "align": False, "max_pixels": MAX_PIXELS, **kw}
    return prepare_dataset(src, out, **kw)


def test_messy_folder_keeps_good_images_and_records_every_rejection(
    messy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    summary = _run(messy, out)

    assert summary.found == 15 and summary.ignored_files == 1
    assert summary.kept == 9 and summary.total_kept == 9
    assert summary.rejected == EXPECTED_REJECTED

    rejected = _jsonl(out / "rejected.jsonl")
    by_name = {Path(r["source"]).name: r for r in rejected}
    assert {name: r["reason"] for name, r in by_name.items()} == {
        "b_copy.png": "duplicate", "corrupt.png": "corrupt", "empty.jpg": "empty_file",
        "huge.png": "too_large", "notes.jpg": "not_image", "truncated.jpg": "truncated",
    }  # fmt: skip
    assert by_name["b_copy.png"]["duplicate_of"] == str(messy.resolve() / "a_original.png")
    assert all(r["detail"] for r in rejected)

    records = _jsonl(out / "manifest.jsonl")
    assert len(records) == 9
    for record in records:
        with Image.open(out / record["output"]) as img:
            assert img.mode == "RGB" and img.size == (SIZE, SIZE)
        assert record["aligned"] is False and record["detector"] is None
        assert len(record["sha256"]) == 64 and record["size"] == SIZE

    crops = {Path(r["source"]).name: np.asarray(Image.open(out / r["output"])) for r in records}
    rot = crops["rotated.jpg"].astype(int)
    assert rot[2, SIZE // 2, 0] > 200 and rot[2, SIZE // 2, 2] < 60  # top red
    assert rot[-3, SIZE // 2, 2] > 200 and rot[-3, SIZE // 2, 0] < 60  # bottom blue
    assert np.all(crops["gray.png"] == 77)
    assert np.all(np.abs(crops["deep16.png"].astype(int) - 127) <= 1)
    assert tuple(crops["rgba.png"][0, 0]) == (255, 255, 255)  # composited on white

    saved = json.loads((out / "summary.json").read_text())
    assert saved["kept"] == 9 and saved["rejected"] == EXPECTED_REJECTED
    with Image.open(out / "montage.png") as montage:
        assert montage.mode == "RGB" and montage.width > 2 * SIZE


def test_rerun_does_no_new_work(messy: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    _run(messy, out)
    manifest_before = (out / "manifest.jsonl").read_text()
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.png")}

    def no_decoding(*args, **kwargs):
        raise AssertionError("a re-run decoded an image")

    monkeypatch.setattr(prepare_mod, "decode_bytes", no_decoding)
    summary = _run(messy, out)
    assert summary.kept == 0 and summary.skipped_done == 9
    assert summary.rejected == EXPECTED_REJECTED  # cached rejections are still reported
    assert (out / "manifest.jsonl").read_text() == manifest_before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert len(_jsonl(out / "rejected.jsonl")) == 6  # rewritten, not appended to


def test_interrupted_run_recovers(messy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(messy, out)
    records = _jsonl(out / "manifest.jsonl")
    lost = out / records[3]["output"]
    lost.unlink()  # the crash happened after the manifest line... of a file now gone
    orphan = lost.parent / f".{lost.name}.x1y2.tmp"
    orphan.write_bytes(b"half a png")
    with open(out / "manifest.jsonl", "a") as fh:
        fh.write('{"output": "images/00/torn')  # a line cut by the crash

    summary = _run(messy, out)
    assert summary.removed_temp_files == 1 and not orphan.exists()
    assert summary.dropped_records == 2  # the missing file's line and the torn line
    assert summary.kept == 1 and summary.skipped_done == 8 and summary.total_kept == 9
    assert lost.is_file()
    again = _jsonl(out / "manifest.jsonl")
    assert sorted(r["sha256"] for r in again) == sorted(r["sha256"] for r in records)


def _rejected_by_name(out: Path) -> dict[str, dict]:
    records = _jsonl(out / "rejected.jsonl")
    by_name = {Path(r["source"]).name: r for r in records}
    assert len(by_name) == len(records)  # one record per source
    return by_name


def test_rerun_with_a_smaller_limit_keeps_the_other_rejections(messy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(messy, out)
    before = _rejected_by_name(out)
    assert len(before) == 6

    summary = _run(messy, out, limit=2)  # a_original.png and b_copy.png only
    assert summary.rejected == {"duplicate": 1}
    after = _rejected_by_name(out)
    assert after == before  # b_copy.png revisited, the five others carried over unchanged
    assert not list(out.glob(".*.tmp"))


def test_interrupted_run_keeps_old_and_new_rejections(
    messy: Path, tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "out"
    _run(messy, out)
    before = _rejected_by_name(out)
    (messy / "0_bad.jpg").write_text("not an image either")  # sorted first: rejected
    _save(Image.fromarray(np.full((40, 40, 3), 9, np.uint8)), messy / "0_new.png")
    real_process = prepare_mod._process

    def interrupted(source, image, *args):
        if image.path.name == "0_new.png":
            raise KeyboardInterrupt
        return real_process(source, image, *args)

    monkeypatch.setattr(prepare_mod, "_process", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(messy, out)
    after = _rejected_by_name(out)
    assert after.pop("0_bad.jpg")["reason"] == "not_image"  # what the run wrote
    assert after == before  # and everything from before
    assert not list(out.glob(".*.tmp"))


def test_run_killed_before_the_swap_leaves_the_previous_rejections(
    messy: Path, tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "out"
    _run(messy, out)
    before = (out / "rejected.jsonl").read_bytes()
    (messy / "0_bad.jpg").write_text("not an image either")

    def killed(self) -> None:  # as if the process died here: no commit, no clean-up
        raise SystemExit("killed")

    monkeypatch.setattr(prepare_mod.mf.RejectionLog, "commit", killed)
    with pytest.raises(SystemExit):
        _run(messy, out)
    assert (out / "rejected.jsonl").read_bytes() == before
    assert len(list(out.glob(".rejected.jsonl.*.tmp"))) == 1  # the new list, never swapped in

    monkeypatch.undo()
    summary = _run(messy, out)
    assert summary.removed_temp_files == 1 and not list(out.glob(".*.tmp"))
    assert set(_rejected_by_name(out)) == {*_rejected_by_name_of(before), "0_bad.jpg"}


def _rejected_by_name_of(data: bytes) -> set[str]:
    return {Path(json.loads(line)["source"]).name for line in data.decode().splitlines()}


def test_a_new_copy_of_a_kept_source_is_the_duplicate_not_the_kept_one(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    photo = Image.fromarray(np.random.default_rng(3).integers(0, 255, (40, 40, 3), np.uint8))
    _save(photo, src / "m_kept.png")
    _run(src, out)
    shutil.copy(src / "m_kept.png", src / "a_copy.png")  # sorts before the kept source

    summary = _run(src, out)
    assert summary.kept == 0 and summary.skipped_done == 1
    assert summary.rejected == {"duplicate": 1}
    rejected = _rejected_by_name(out)
    assert set(rejected) == {"a_copy.png"}
    assert rejected["a_copy.png"]["reason"] == "duplicate"
    assert rejected["a_copy.png"]["duplicate_of"] == str((src / "m_kept.png").resolve())
    assert [Path(r["source"]).name for r in _jsonl(out / "manifest.jsonl")] == ["m_kept.png"]

    # The kept file renamed: the same image under a new name is done, not a duplicate.
    (src / "a_copy.png").unlink()
    (src / "m_kept.png").rename(src / "z_moved.png")
    summary = _run(src, out)
    assert summary.kept == 0 and summary.skipped_done == 1 and summary.rejected == {}


def test_output_problems_are_one_line_user_errors(messy: Path, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(UserError, match="exists and is not a folder"):
        _run(messy, tmp_path / "a_file")

    def disk_full(path, image, text=None):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(prepare_mod, "write_png", disk_full)
    with pytest.raises(UserError) as info:
        _run(messy, tmp_path / "out")
    message = str(info.value)
    assert message.startswith(f"cannot write the dataset in {tmp_path / 'out'}")
    assert "No space left on device" in message and "\n" not in message


def test_damaged_manifest_and_rejection_lines_are_dropped(messy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(messy, out)
    for name in ("manifest.jsonl", "rejected.jsonl"):
        with open(out / name, "ab") as fh:  # a bad byte, a JSON list, a JSON string
            fh.write(b'{"output": "\xff\xfe"}\n[1, 2]\n"text"\n')
    summary = _run(messy, out)
    assert summary.dropped_records == 3 and summary.skipped_done == 9
    assert summary.rejected == EXPECTED_REJECTED
    assert len(_jsonl(out / "manifest.jsonl")) == 9 and len(_rejected_by_name(out)) == 6


def test_changed_size_into_the_same_folder_is_refused(messy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(messy, out)
    with pytest.raises(UserError, match="already holds 32 px"):
        _run(messy, out, size=64)


def test_live_lock_refuses_and_stale_lock_is_taken_over(messy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / ".prepare.lock").write_text(str(os.getppid()))  # a live process
    with pytest.raises(UserError, match="another run"):
        _run(messy, out)
    (out / ".prepare.lock").write_text("999999999")  # no such process
    assert _run(messy, out).kept == 9
    assert not (out / ".prepare.lock").exists()


def test_celeba_split_goes_into_the_manifest(tmp_path: Path) -> None:
    src = tmp_path / "celeba"
    for i in range(1, 4):
        colour = np.full((60, 50, 3), 40 * i, np.uint8)
        _save(Image.fromarray(colour), src / "img_align_celeba" / f"{i:06d}.jpg")
    (src / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n")
    logged: list[str] = []
    summary = _run(src, tmp_path / "out", log=logged.append)
    assert summary.layout.startswith("celeba")
    assert any("celeba" in line for line in logged)
    records = _jsonl(tmp_path / "out" / "manifest.jsonl")
    splits = {Path(r["source"]).name: r["split"] for r in records}
    assert splits == {"000001.jpg": "train", "000002.jpg": "val", "000003.jpg": "test"}


def test_limit_takes_the_first_images_in_sorted_order(messy: Path, tmp_path: Path) -> None:
    summary = _run(messy, tmp_path / "out", limit=2)
    assert summary.found == 2
    names = [Path(r["source"]).name for r in _jsonl(tmp_path / "out" / "manifest.jsonl")]
    assert names == ["a_original.png"]  # b_copy.png is its duplicate
    assert Counter(summary.rejected) == Counter({"duplicate": 1})


def test_empty_and_fully_rejected_inputs_are_user_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no JPEG, PNG, WebP or BMP images"):
        _run(tmp_path / "empty", tmp_path / "out1")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notes.jpg").write_text("text")
    with pytest.raises(UserError, match=r"all 1 images were rejected \(not_image: 1\)"):
        _run(bad, tmp_path / "out2")
    assert _jsonl(tmp_path / "out2" / "rejected.jsonl")[0]["reason"] == "not_image"


def test_bad_arguments_are_user_errors(messy: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--size"):
        _run(messy, tmp_path / "out", size=8)
    with pytest.raises(UserError, match="differ from the source"):
        _run(messy, messy)
    with pytest.raises(UserError, match="--face-model applies to yunet only"):
        _run(messy, tmp_path / "out", align=True, detector="haar", face_model="x.onnx")
    with pytest.raises(UserError, match="unknown face detector 'nope'"):
        _run(messy, tmp_path / "out", align=True, detector="nope")


@pytest.mark.parametrize("detector", ["yunet", "haar"])
def test_detect_and_align_real_portraits(tmp_path: Path, detector: str) -> None:
    portraits = shared_path("data", "portraits-cc0-256")
    model = shared_path("models", "face_detection_yunet.onnx")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("001.jpg", "005.jpg", "007.jpg"):
        shutil.copy(portraits / name, src / name)
    _save(Image.fromarray(np.full((200, 200, 3), 128, np.uint8)), src / "wall.png")
    face_model = model if detector == "yunet" else None
    out = tmp_path / "out"
    kw = {"align": True, "detector": detector, "face_model": face_model, "size": 64}
    summary = _run(src, out, **kw)
    assert summary.kept == 3 and summary.rejected == {"no_face": 1}
    for record in _jsonl(out / "manifest.jsonl"):
        assert record["aligned"] is True and record["detector"] == detector
        assert len(record["landmarks"]) == 5 and len(record["box"]) == 4
        assert record["landmarks_estimated"] is (detector == "haar")
        with Image.open(out / record["output"]) as img:
            assert img.size == (64, 64) and img.mode == "RGB"

    with pytest.raises(UserError, match=r"all 4 images were rejected \(face_too_small: 3, no_face"):
        _run(src, tmp_path / "out2", **kw, min_face=400)
    details = [r["detail"] for r in _jsonl(tmp_path / "out2" / "rejected.jsonl")]
    assert sum("under --min-face 400" in d for d in details) == 3
