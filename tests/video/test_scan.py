"""Scanning a video: faces per frame, tracks, per-face scores and their aggregation."""

from __future__ import annotations

import numpy as np
import pytest

from avtools import yunet_finder
from conftest import shared_path
from deepfake_lab.errors import UserError
from deepfake_lab.video.scan import aggregate, scan_video
from detector_toys import make_toy_sets, train_toy


def test_aggregations():
    frames = [[0.1, 0.9], [0.2], [], [0.3, 0.4]]
    assert aggregate(frames, "mean") == pytest.approx(np.mean([0.1, 0.9, 0.2, 0.3, 0.4]))
    assert aggregate(frames, "max-face") == pytest.approx(np.mean([0.9, 0.2, 0.4]))
    assert aggregate(frames, "topk", k=2) == pytest.approx(np.mean([0.9, 0.4]))
    assert aggregate([[], []]) is None
    with pytest.raises(UserError, match="unknown aggregation"):
        aggregate(frames, "median")


@pytest.fixture(scope="module")
def toy_detector(tmp_path_factory):
    from deepfake_lab.models.detectors.loading import load_detector

    root = make_toy_sets(tmp_path_factory.mktemp("toy"), n=16)
    return load_detector(train_toy(root, epochs=1))


def test_scan_follows_the_anchor_and_scores_every_face(toy_detector):
    from deepfake_lab.faces.detectors import FACE_DETECTORS

    video = shared_path("videos", "ffpp_anchor_real.mp4")
    model = shared_path("models", "face_detection_yunet.onnx")
    finder = FACE_DETECTORS.build("yunet", face_model=model)
    timings: dict[str, float] = {}
    scan = scan_video(
        video,
        toy_detector,
        finder,
        stride=5,
        max_frames=12,
        aggregation="max-face",
        timings=timings,
        batch=5,  # several scoring batches: scored as it goes
    )
    assert set(timings) == {"decode", "faces", "align", "score", "tracks"}
    assert all(v > 0 for v in timings.values())
    assert scan.frames == 12 and scan.error is None
    assert all(n >= 1 for n in scan.faces_per_frame)  # one news anchor, always visible
    assert [f["index"] for f in scan.frame_scores] == list(range(0, 60, 5))
    main = max(scan.tracks, key=lambda t: t["frames"])
    assert main["frames"] == 12  # one track through the whole scan
    assert all(0 <= p <= 1 for f in scan.frame_scores for p in f["faces"])
    assert scan.score == pytest.approx(np.mean([max(f["faces"]) for f in scan.frame_scores]))
    assert scan.label in ("fake", "real")
    c = main["consistency"]
    assert c["flicker"] is not None and 0 <= c["flicker"] < 0.2
    assert c["landmark_jitter"] is not None and c["landmark_jitter"] < 0.5


def test_detect_cli_scores_videos_beside_images(toy_detector, tmp_path):
    """`detect MODEL video image`: one JSON with the images' results and a "videos" list
    (per-frame, per-track, per-video scores), a timeline PNG per video."""
    import json
    import shutil

    from PIL import Image
    from typer.testing import CliRunner

    from deepfake_lab.cli.app import app
    from deepfake_lab.data.procedural import render_faces

    video = shared_path("videos", "ffpp_anchor_real.mp4")
    model = shared_path("models", "face_detection_yunet.onnx")
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(video, folder / "clip.mp4")
    Image.fromarray(render_faces(1, 64)[0]).save(folder / "face.png")
    (folder / "cut.mp4").write_bytes(video.read_bytes()[:5000])  # unreadable: reported
    run = toy_detector.identity["source"]
    res = CliRunner().invoke(
        app,
        [
            "detect",
            run,
            str(folder),
            "--json",
            str(tmp_path / "d.json"),
            "--timeline",
            str(tmp_path / "tl"),
            "--face-model",
            str(model),
            "--stride",
            "10",
            "--max-frames",
            "5",
            "--aggregate",
            "topk",
            "--topk",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "d.json").read_text())
    assert [r["path"].rsplit("/", 1)[-1] for r in doc["results"]] == ["face.png"]
    videos = {r["path"].rsplit("/", 1)[-1]: r for r in doc["videos"]}
    clip = videos["clip.mp4"]
    assert (
        clip["frames"] == 5 and clip["aggregation"] == "topk" and clip["label"] in ("fake", "real")
    )
    top2 = sorted(max(f["faces"]) for f in clip["frame_scores"])[-2:]
    assert clip["probability"] == pytest.approx(np.mean(top2))
    assert (tmp_path / "tl" / "clip.mp4.timeline.png").is_file()
    assert videos["cut.mp4"]["label"] == "error" and "cut.mp4" in videos["cut.mp4"]["error"]
    main = max(clip["tracks"], key=lambda t: t["frames"])
    assert clip["consistency"] == main["consistency"]
    assert clip["watermark"] is False and clip["watermark_fingerprint"] is None
    assert clip["sync"] is None  # not asked for


def test_detect_sync_reads_videos_with_audio_and_says_which_have_none(
    toy_detector, tmp_path, monkeypatch
):
    """`detect --sync`: the av-sync reading of a video with audio (the same as `av-sync`
    gives), "no audio" for one without; the table shows it."""
    import json

    from typer.testing import CliRunner

    from deepfake_lab.cli.app import app
    from deepfake_lab.cli.common import console
    from deepfake_lab.faces.detectors import FACE_DETECTORS
    from deepfake_lab.video.avsync import av_sync

    monkeypatch.setattr(console, "_width", 200)  # a wide terminal: one line per table row
    grid = shared_path("videos", "grid_bbaf2n_real.mpg")
    anchor = shared_path("videos", "ffpp_anchor_real.mp4")
    model = shared_path("models", "face_detection_yunet.onnx")
    run = toy_detector.identity["source"]
    out = tmp_path / "d.json"
    args = ["detect", run, str(grid), str(anchor), "--json", str(out), "--sync"]
    args += ["--face-model", str(model), "--lips", "off", "--max-frames", "30"]
    args += ["--report", str(tmp_path / "report")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    videos = {r["path"].rsplit("/", 1)[-1]: r for r in json.loads(out.read_text())["videos"]}
    sync = videos[grid.name]["sync"]
    direct = av_sync(grid, FACE_DETECTORS.build("yunet", face_model=model))
    assert sync["offset_ms"] == direct["offset_ms"] and sync["chance_p"] == direct["chance_p"]
    assert sync["mouth_signals"] == ["openness"]
    assert videos[anchor.name]["sync"] == {"skipped": "no audio track"}
    text = " ".join(res.output.split())
    assert f"{sync['offset_ms']:+.0f} ms ({sync['confidence']:.2f}" in text and "no audio" in text
    # --report: the page, each video's timeline, and the sync plot of the one with audio.
    page = (tmp_path / "report" / "index.html").read_text()
    assert f'src="{grid.name}.sync.png"' in page and f'src="{anchor.name}.timeline.png"' in page
    assert (tmp_path / "report" / f"{grid.name}.sync.png").is_file()
    assert sync["plot"] == str(tmp_path / "report" / f"{grid.name}.sync.png")


def test_evenly_spaced_frames_span_the_clip_and_skip_temporal_measures(toy_detector):
    from deepfake_lab.video.decode import probe, sample_frame_indices

    video = shared_path("videos", "ffpp_anchor_real.mp4")
    finder = yunet_finder()
    scan = scan_video(video, toy_detector, finder, frames=6)
    wanted = sample_frame_indices(probe(video).n_frames, 6)
    assert [f["index"] for f in scan.frame_scores] == wanted and wanted[-1] > 200
    main = max(scan.tracks, key=lambda t: t["frames"])
    assert main["frames"] == 6  # linked across the wide gaps: the anchor hardly moves
    # Frames far apart say nothing about frame-to-frame shake: no numbers, not wrong ones.
    assert main["consistency"]["landmark_jitter"] is None and main["consistency"]["flicker"] is None
    assert scan.extra["evenly_spaced"] == 6 and scan.extra["stride"] is None


def test_every_frame_taken_evenly_keeps_the_temporal_measures_and_progress_counts(toy_detector):
    """--frames as large as the clip takes consecutive frames: jitter and flicker are read,
    the same as with --stride 1; the progress callback counts up to the expected total."""

    video = shared_path("videos", "grid_bbaf2n_real.mpg")
    finder = yunet_finder()
    calls = []
    every = scan_video(video, toy_detector, finder, frames=75, progress=lambda *a: calls.append(a))
    strided = scan_video(video, toy_detector, finder)
    assert every.tracks[0]["consistency"] == strided.tracks[0]["consistency"]
    assert every.tracks[0]["consistency"]["landmark_jitter"] is not None
    assert calls == [(i, 75) for i in range(1, 76)]
    with pytest.raises(UserError, match="topk and batch must be 1 or more"):
        scan_video(video, toy_detector, finder, aggregation="topk", topk=0)


def test_detect_cli_says_why_videos_failed_and_checks_outputs_first(toy_detector, tmp_path):
    from typer.testing import CliRunner

    from deepfake_lab.cli.app import app

    grid = shared_path("videos", "grid_bbaf2n_real.mpg")
    cut = tmp_path / "cut.mpg"
    cut.write_bytes(grid.read_bytes()[: int(grid.stat().st_size * 0.6)])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    run = toy_detector.identity["source"]
    face = ["--face-model", str(shared_path("models", "face_detection_yunet.onnx"))]
    res = CliRunner().invoke(app, ["detect", run, str(grid), str(cut), str(empty), *face])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "empty.mp4: not scanned: the file has 0 bytes" in out
    assert "cut.mpg: scored the 4" in out and "frames before the damage: decoding stopped" in out
    assert "of 3 videos called fake" in out and "1 unreadable; 1 damaged part-way" in out
    assert "grid_bbaf2n_real.mpg" in out and " no " in out  # whole names; no watermark
    res = CliRunner().invoke(app, ["detect", run, str(grid), *face, "--start", "2.97"])
    assert res.exit_code == 0 and "1 with no frame in the range" in res.output, res.output
    assert "unreadable" not in res.output
    # Bad outputs and values fail at once, on one line, before any video is read.
    (tmp_path / "taken").write_text("x")
    for bad, message in (
        (["--json", str(tmp_path)], "is a folder; give a file name"),
        (["--timeline", str(tmp_path / "taken")], "is a file, not a folder"),
        (["--topk", "0", "--aggregate", "topk"], "--topk must be 1 or more"),
        (["--aggregate", "median"], "choose one of mean, max-face, topk"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--end", "inf"], "--end (inf) must be a number of seconds"),
        (["--end", "1", "--start", "2"], "seconds after --start"),
    ):
        res = CliRunner().invoke(app, ["detect", run, str(grid), *face, *bad])
        assert res.exit_code == 2 and message in res.output, (bad, res.output)
        assert "Traceback" not in res.output


def test_detect_videos_reports_progress_per_video_and_per_frame(toy_detector, tmp_path):
    from deepfake_lab.video.detect_video import detect_videos

    grid = shared_path("videos", "grid_bbaf2n_real.mpg")
    finder = yunet_finder()
    seen = []
    detect_videos(
        toy_detector, [grid, grid], finder, max_frames=3, progress=lambda *a: seen.append(a)
    )
    assert [a for a in seen if a[0] == "videos"] == [("videos", i, 2) for i in range(3)]
    assert [a for a in seen if a[0] == "frames"] == [("frames", i, 3) for i in (1, 2, 3)] * 2


def test_ctrl_c_mid_scan_keeps_the_finished_videos_in_the_json(toy_detector, tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    import deepfake_lab.video.detect_video as dv
    from deepfake_lab.cli.app import app

    real_scan, calls, stop_at = dv.scan_video, [], [2]

    def scan_then_stop(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == stop_at[0]:
            raise KeyboardInterrupt
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(dv, "scan_video", scan_then_stop)
    grid = str(shared_path("videos", "grid_bbaf2n_real.mpg"))
    out = tmp_path / "d.json"
    face = ["--face-model", str(shared_path("models", "face_detection_yunet.onnx"))]
    res = CliRunner().invoke(
        app, ["detect", toy_detector.identity["source"], grid, grid, "--json", str(out), *face]
    )
    assert res.exit_code == 130 and "the 1 video(s) finished are in" in res.output, res.output
    doc = json.loads(out.read_text())
    assert len(doc["videos"]) == 1 and doc["videos"][0]["frames"] == 75
    assert "after 1 video" in doc["interrupted"]
    # Stopped before any video finished: the earlier file is left as it was.
    stop_at[0] = len(calls) + 1  # the next scan stops at once
    res = CliRunner().invoke(
        app, ["detect", toy_detector.identity["source"], grid, "--json", str(out), *face]
    )
    assert res.exit_code == 130 and "finished are in" not in res.output, res.output
    assert json.loads(out.read_text()) == doc
