"""prepare_dataset on videos: sampled frames, faces and tracks, labels, re-runs, bad files.

The videos are made here with PyAV. Without a detector (``align=False``) each sampled frame
is one centre crop, which is enough to check frame sampling, bookkeeping and labels; the
face and track tests paste FFHQ faces from the shared data and skip without it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import shared_path
from deepfake_lab.data import manifest as mf
from deepfake_lab.data import prepare_video as pv
from deepfake_lab.data.prepare import prepare_dataset
from deepfake_lab.errors import UserError
from deepfake_lab.video.decode import sample_frame_indices

SIZE = 32
FPS = 25


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_video(path: Path, frames: list[np.ndarray], codec: str = "libx264") -> Path:
    """Encode RGB frames at 25 fps: H.264 in MP4 (index at the end), or MPEG-1 in MPEG-PS
    for ``.mpg``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mpeg = path.suffix == ".mpg"
    with av.open(str(path), "w", format="mpeg" if mpeg else None) as out:
        stream = out.add_stream("mpeg1video" if mpeg else codec, rate=FPS)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _gray_ramp(n: int = 40, base: int = 40, step: int = 4) -> list[np.ndarray]:
    """Frames of one flat gray each, ``base + step * index``: a crop tells its frame."""
    return [np.full((64, 80, 3), base + step * i, np.uint8) for i in range(n)]


def _run(src: Path, out: Path, **kw):
    kw = {"size": SIZE, "align": False, "frames_per_video": 4, **kw}
    return prepare_dataset(src, out, **kw)


def test_evenly_spaced_frames_with_index_and_timestamp(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    video = _write_video(src / "clip.mp4", _gray_ramp(40))
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(src / "photo.png")

    summary = _run(src, out)
    assert (summary.found, summary.kept, summary.videos_found, summary.videos_kept) == (2, 2, 1, 1)
    assert summary.frames_sampled == 4 and summary.video_faces_kept == 4
    assert summary.total_kept == 5 and summary.seconds_per_video > 0

    records = _jsonl(out / "manifest.jsonl")
    assert all(set(r) == set(mf.MANIFEST_FIELDS) for r in records)
    photo = next(r for r in records if r["source"].endswith("photo.png"))
    assert all(photo[k] is None for k in (*mf.VIDEO_FIELDS, *mf.LABEL_FIELDS))
    assert photo["output"] == mf.output_name(photo["sha256"])  # images named as before

    frames = [r for r in records if r["source"] == str(video)]
    wanted = sample_frame_indices(40, 4)
    assert wanted == [5, 15, 25, 35]
    assert [r["frame_index"] for r in frames] == wanted
    assert [r["timestamp"] for r in frames] == pytest.approx([i / FPS for i in wanted], abs=1e-3)
    sha = pv.sha256_file(video)
    for r, index in zip(frames, wanted, strict=True):
        assert r["sha256"] == sha and r["video_id"] == sha[:16]
        assert r["track_id"] is None and r["video_faces"] == 4 and r["decode_error"] is None
        assert r["output"] == mf.video_output_name(sha, index, None)
        assert r["output"] == f"images/{sha[:2]}/{sha[:16]}_f{index:06d}.png"
        assert (r["source_width"], r["source_height"]) == (80, 64)
        crop = np.asarray(Image.open(out / r["output"]))
        assert crop.shape == (SIZE, SIZE, 3)
        assert abs(float(crop.mean()) - (40 + 4 * index)) < 4  # that frame, not another


def test_frames_per_video_larger_than_the_video_takes_every_frame(tmp_path: Path) -> None:
    _write_video(tmp_path / "src" / "short.mp4", _gray_ramp(6))
    summary = _run(tmp_path / "src", tmp_path / "out", frames_per_video=32)
    assert summary.frames_sampled == 6
    indices = [r["frame_index"] for r in _jsonl(tmp_path / "out" / "manifest.jsonl")]
    assert indices == list(range(6))


def test_rerun_skips_kept_videos_without_decoding(tmp_path: Path, monkeypatch) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    _write_video(src / "a.mp4", _gray_ramp(20))
    _write_video(src / "b.mpg", _gray_ramp(20, base=120))
    first = _run(src, out)
    assert first.videos_kept == 2 and first.total_kept == 8
    manifest = (out / "manifest.jsonl").read_text()

    def no_decoding(*args, **kwargs):
        raise AssertionError("a re-run decoded a video")

    def no_hashing(*args, **kwargs):
        raise AssertionError("a re-run hashed an unchanged video")

    real_sha256 = pv.sha256_file
    monkeypatch.setattr(pv, "iter_evenly_spaced", no_decoding)
    monkeypatch.setattr(pv, "sha256_file", no_hashing)
    again = _run(src, out)
    assert again.kept == 0 and again.skipped_done == 2 and again.videos_skipped_done == 2
    assert again.rejected == {} and again.total_kept == 8
    assert (out / "manifest.jsonl").read_text() == manifest

    # Re-timestamped or moved: hashed again (same bytes), still done, still not decoded.
    monkeypatch.setattr(pv, "sha256_file", real_sha256)
    os.utime(src / "a.mp4", ns=(1_000_000_000, 1_000_000_000))
    (src / "b.mpg").rename(src / "c.mpg")
    moved = _run(src, out)
    assert moved.kept == 0 and moved.videos_skipped_done == 2 and moved.rejected == {}
    assert (out / "manifest.jsonl").read_text() == manifest


def test_bad_videos_are_rejections_and_a_cut_one_keeps_its_first_frames(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    good = _write_video(src / "good.mp4", _gray_ramp(20))
    rng = np.random.default_rng(0)
    noisy = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(30)]
    whole_mp4 = _write_video(tmp_path / "whole.mp4", noisy)
    whole_mpg = _write_video(tmp_path / "whole.mpg", noisy)
    (src / "cut.mp4").write_bytes(whole_mp4.read_bytes()[: whole_mp4.stat().st_size // 2])
    (src / "cut.mpg").write_bytes(whole_mpg.read_bytes()[: whole_mpg.stat().st_size * 6 // 10])
    (src / "garbage.mp4").write_bytes(rng.integers(0, 255, 4000, dtype=np.uint8).tobytes())
    (src / "text.webm").write_text("not a video\n")
    (src / "empty.mov").write_bytes(b"")
    shutil.copy(good, src / "good_copy.mp4")

    summary = _run(src, out, frames_per_video=8)
    assert summary.videos_found == 7
    assert summary.rejected == {"duplicate": 1, "empty_file": 1, "not_video": 2, "truncated": 1}
    assert summary.videos_kept == 2 and summary.videos_damaged == 1

    reasons = {Path(r["source"]).name: r["reason"] for r in _jsonl(out / "rejected.jsonl")}
    assert reasons == {
        "cut.mp4": "truncated", "empty.mov": "empty_file", "garbage.mp4": "not_video",
        "good_copy.mp4": "duplicate", "text.webm": "not_video",
    }  # fmt: skip

    cut = [r for r in _jsonl(out / "manifest.jsonl") if r["source"].endswith("cut.mpg")]
    assert 0 < len(cut) < 8  # the frames before the cut, not more
    assert all(r["decode_error"].startswith("truncated: decoding stopped at frame") for r in cut)
    assert all(r["video_faces"] == len(cut) for r in cut)

    # A re-run takes the rejections from rejected.jsonl, without opening the files again.
    again = _run(src, out, frames_per_video=8)
    assert again.rejected == summary.rejected and again.videos_processed == 0


def test_a_missing_crop_makes_the_video_redone_whole(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    _write_video(src / "a.mp4", _gray_ramp(20))
    _write_video(src / "b.mp4", _gray_ramp(20, base=100))
    _run(src, out)
    records = _jsonl(out / "manifest.jsonl")
    lost = next(r for r in records if r["source"].endswith("b.mp4") and r["frame_index"] > 5)
    (out / lost["output"]).unlink()  # as if the run died between the PNGs and the lines

    summary = _run(src, out)
    assert summary.dropped_records == 4  # all of b.mp4's set, not only the missing crop
    assert summary.videos_kept == 1 and summary.videos_skipped_done == 1
    assert summary.total_kept == 8 and (out / lost["output"]).is_file()
    again = _jsonl(out / "manifest.jsonl")
    assert sorted(r["output"] for r in again) == sorted(r["output"] for r in records)


def test_recover_keeps_complete_videos_and_drops_incomplete_ones(tmp_path: Path) -> None:
    def record(sha: str, frame: int, faces: int) -> dict:
        name = mf.video_output_name(sha, frame, 0)
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"png")
        return {"output": name, "sha256": sha, "size": 32, "aligned": True, "video_faces": faces}

    complete = [record("ab" * 32, i, 3) for i in range(3)]  # one sha256, three crops
    torn = [record("cd" * 32, 0, 2)]  # the second line of this video never made it
    lines = [*complete, *torn, complete[0]]  # and a repeated line
    (tmp_path / mf.MANIFEST).write_text("".join(json.dumps(r) + "\n" for r in lines))
    kept, recovery = mf.recover(tmp_path)
    assert kept == complete and recovery.dropped_records == 2
    assert _jsonl(tmp_path / mf.MANIFEST) == complete
    mf.check_compatible(kept, 32, True, tmp_path)
    with pytest.raises(UserError, match="already holds 32 px aligned crops"):
        mf.check_compatible(kept, 64, True, tmp_path)


def test_faceforensics_and_voxceleb_labels_reach_the_manifest(tmp_path: Path) -> None:
    ffpp = tmp_path / "ffpp"
    _write_video(ffpp / "original_sequences/youtube/c23/videos/000.mp4", _gray_ramp(12))
    _write_video(
        ffpp / "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4", _gray_ramp(12, base=90)
    )
    summary = _run(ffpp, tmp_path / "out_ffpp")
    assert summary.layout.startswith("faceforensics")
    labels = {
        (r["label"], r["method"], r["compression"], r["speaker"])
        for r in _jsonl(tmp_path / "out_ffpp" / "manifest.jsonl")
    }
    assert labels == {("real", None, "c23", None), ("fake", "Deepfakes", "c23", None)}

    vox = tmp_path / "vox"
    _write_video(vox / "dev/mp4/id00012/21Uxsk56VDQ/00001.mp4", _gray_ramp(12))
    _write_video(vox / "test/mp4/id00017/01dfn2spqyE/00001.mp4", _gray_ramp(12, base=90))
    summary = _run(vox, tmp_path / "out_vox")
    assert summary.layout.startswith("voxceleb")
    got = {
        (r["label"], r["speaker"], r["youtube_id"], r["split"])
        for r in _jsonl(tmp_path / "out_vox" / "manifest.jsonl")
    }
    assert got == {
        ("real", "id00012", "21Uxsk56VDQ", "train"),
        ("real", "id00017", "01dfn2spqyE", "test"),
    }


def test_limit_counts_images_and_videos_in_path_order(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write_video(src / "b.mp4", _gray_ramp(8))
    Image.fromarray(np.full((40, 40, 3), 10, np.uint8)).save(src / "a.png")
    Image.fromarray(np.full((40, 40, 3), 20, np.uint8)).save(src / "c.png")
    summary = _run(src, tmp_path / "out", limit=2)
    assert summary.found == 2 and summary.videos_found == 1
    names = {Path(r["source"]).name for r in _jsonl(tmp_path / "out" / "manifest.jsonl")}
    assert names == {"a.png", "b.mp4"}


def test_all_videos_rejected_and_bad_arguments_are_user_errors(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.mp4").write_text("text")
    with pytest.raises(UserError, match=r"all 1 files were rejected \(not_video: 1\)"):
        _run(tmp_path / "src", tmp_path / "out")
    with pytest.raises(UserError, match="--frames-per-video"):
        _run(tmp_path / "src", tmp_path / "out", frames_per_video=0)


def test_cli_frames_per_video_and_the_video_rows(tmp_path: Path) -> None:
    from deepfake_lab.cli.app import app

    _write_video(tmp_path / "src" / "clip.mp4", _gray_ramp(30))
    args = ["data", "prepare", str(tmp_path / "src"), str(tmp_path / "out"), "--no-align"]
    result = CliRunner().invoke(app, [*args, "--size", "32", "--frames-per-video", "3"])
    assert result.exit_code == 0, result.output
    assert "frames sampled" in result.output and "3 (3/video)" in result.output
    assert len(_jsonl(tmp_path / "out" / "manifest.jsonl")) == 3
    help_text = CliRunner().invoke(app, ["data", "prepare", "--help"]).output
    assert "--frames-per-video" in help_text


# --- with a face detector (shared YuNet model and FFHQ faces) -----------------------------


def _yunet() -> Path:
    """The shared YuNet model (skips the test when it is absent)."""
    return shared_path("models", "face_detection_yunet.onnx")


def _faces_or_skip() -> list[np.ndarray]:
    """Three FFHQ faces; skips the test without them or without the YuNet model."""
    _yunet()
    ffhq = shared_path("data", "ffhq-128")
    return [np.asarray(Image.open(ffhq / f"{i:05d}.png").convert("RGB")) for i in (1, 2, 3)]


def _two_then_three_faces(faces: list[np.ndarray], n: int = 20) -> list[np.ndarray]:
    """Two faces drifting towards each other; a third appears in the middle from frame 10."""
    frames = []
    for t in range(n):
        img = np.full((240, 480, 3), 90, np.uint8)
        img[40 + t : 168 + t, 20 + t : 148 + t] = faces[0]
        img[60:188, 300 - t : 428 - t] = faces[1]
        if t >= n // 2:
            img[20:148, 170:298] = faces[2]
        frames.append(img)
    return frames


def test_every_face_of_every_sampled_frame_gets_a_track(tmp_path: Path) -> None:
    faces = _faces_or_skip()
    src, out = tmp_path / "src", tmp_path / "out"
    video = _write_video(src / "people.mp4", _two_then_three_faces(faces))
    kw = {"align": True, "detector": "yunet", "face_model": _yunet(), "size": 64}
    summary = _run(src, out, frames_per_video=6, **kw)
    assert summary.frames_sampled == 6 and summary.video_tracks == 3

    records = _jsonl(out / "manifest.jsonl")
    wanted = sample_frame_indices(20, 6)
    by_frame = {i: [r for r in records if r["frame_index"] == i] for i in wanted}
    assert [len(by_frame[i]) for i in wanted] == [2 if i < 10 else 3 for i in wanted]
    assert summary.video_faces_kept == len(records) == sum(2 if i < 10 else 3 for i in wanted)

    def column(record: dict) -> int:  # left, middle or right face, from its box centre
        x, _, w, _ = record["box"]
        return int((x + w / 2) // 160)

    tracks: dict[int, set[int]] = {}
    for r in records:
        tracks.setdefault(r["track_id"], set()).add(column(r))
        assert r["aligned"] is True and r["detector"] == "yunet" and len(r["landmarks"]) == 5
        assert r["output"] == mf.video_output_name(r["sha256"], r["frame_index"], r["track_id"])
        with Image.open(out / r["output"]) as img:
            assert img.size == (64, 64)
    assert sorted(tracks) == [0, 1, 2]
    assert all(len(cols) == 1 for cols in tracks.values())  # a track never jumps faces
    assert {next(iter(c)) for c in tracks.values()} == {0, 1, 2}
    middle = next(t for t, cols in tracks.items() if cols == {1})
    assert middle == 2  # ids in order of first appearance: the late face is the last
    assert min(r["frame_index"] for r in records if r["track_id"] == middle) >= 10
    assert len({r["output"] for r in records}) == len(records)
    assert {r["video_id"] for r in records} == {pv.sha256_file(video)[:16]}


def test_faceless_and_small_face_videos_are_rejections(tmp_path: Path) -> None:
    faces = _faces_or_skip()
    src = tmp_path / "src"
    _write_video(src / "wall.mp4", [np.full((120, 160, 3), 90 + i, np.uint8) for i in range(10)])
    _write_video(src / "people.mp4", _two_then_three_faces(faces, 10))
    kw = {"align": True, "detector": "yunet", "face_model": _yunet()}
    summary = _run(src, tmp_path / "out", **kw)
    assert summary.rejected == {"no_face": 1} and summary.videos_kept == 1
    rejected = _jsonl(tmp_path / "out" / "rejected.jsonl")
    assert rejected[0]["detail"] == "the detector found no face in the 4 sampled frames"

    with pytest.raises(UserError, match=r"all 2 files were rejected \(face_too_small: 1, no_face"):
        _run(src, tmp_path / "out2", min_face=300, **kw)


def test_real_talking_head_clip_is_one_track(tmp_path: Path) -> None:
    clip = shared_path("videos", "grid_bbaf2n_real.mpg")
    _yunet()
    src = tmp_path / "src"
    src.mkdir()
    (src / clip.name).symlink_to(clip)
    kw = {"align": True, "detector": "yunet", "face_model": _yunet(), "size": 64}
    summary = _run(src, tmp_path / "out", frames_per_video=8, **kw)
    records = _jsonl(tmp_path / "out" / "manifest.jsonl")
    assert summary.video_tracks == 1 and len(records) == 8
    assert {r["track_id"] for r in records} == {0}
    times = [r["timestamp"] for r in records]
    assert times == sorted(times) and 0 < times[0] and times[-1] < 3.0
