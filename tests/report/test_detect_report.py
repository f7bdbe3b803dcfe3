"""The detect report: one page with the videos' numbers, timelines and sync plots."""

from __future__ import annotations

import html

from deepfake_lab.report.detect_report import sync_cell, write_detect_report


def _video(name: str, tmp_path, **extra) -> dict:
    timeline = tmp_path / f"{name}.timeline.png"
    timeline.write_bytes(b"png")
    return {
        "path": f"/data/{name}",
        "model": "npr:0123456789ab",
        "threshold": 0.3,
        "probability": 0.91234,
        "label": "fake",
        "frames": 75,
        "tracks": [{"frames": 75}],
        "consistency": {"landmark_jitter": 0.0061, "flicker": 0.0072},
        "watermark": False,
        "watermark_fingerprint": None,
        "sync": None,
        "timeline": str(timeline),
        "error": None,
    } | extra


def test_report_lays_out_videos_and_images(tmp_path):
    plot = tmp_path / "talk.mpg.sync.png"
    plot.write_bytes(b"png")
    sync = {"offset_ms": -27.0, "confidence": 1.95, "chance_p": 0.11, "plot": str(plot)}
    videos = [
        _video("talk.mpg", tmp_path, sync=sync),
        _video(
            "walk.mp4",
            tmp_path,
            watermark=True,
            watermark_fingerprint="702b8a9d",
            sync={"skipped": "no audio track"},
        ),
        {"path": "/data/cut.mp4", "label": "error", "probability": None, "error": "cut short"},
    ]
    images = [{"path": "a.png", "probability": 0.2, "label": "real", "watermark": False}]
    page = write_detect_report(tmp_path, "npr:0123456789ab", 0.3, images, videos)
    text = html.unescape(page.read_text())
    assert page == tmp_path / "index.html"
    assert "npr:0123456789ab, threshold on P(fake) 0.3000" in text
    assert "<td>talk.mpg</td>" in text and '<td class="num">0.9123</td>' in text
    assert "-27 ms (1.95, p 0.11)" in text and "no audio" in text
    assert "yes (702b8a9d)" in text and "cut.mp4: cut short" in text
    # Pictures by relative path: the folder can be moved or zipped.
    assert 'src="talk.mpg.sync.png"' in text and 'src="walk.mp4.timeline.png"' in text
    assert "<td>a.png</td>" in text and "0 of 1 called fake." in text


def test_sync_cell_says_why_there_is_no_reading():
    assert sync_cell(None) == "" and sync_cell({"skipped": "no audio track"}) == "no audio"
    assert sync_cell({"error": "no face"}) == "unreadable"


def test_without_sync_there_is_no_sync_column_and_pictures_outside_are_linked(tmp_path):
    """Not asking for --sync is not "no audio"; a timeline written beside the report folder
    (--timeline elsewhere) is still shown, by a relative path."""
    report, beside = tmp_path / "report", tmp_path / "tl"
    beside.mkdir()
    page = write_detect_report(report, "npr:x", 0.5, [], [_video("talk.mpg", beside)])
    text = page.read_text()
    assert "av-sync" not in text and "no audio" not in text
    assert 'src="../tl/talk.mpg.timeline.png"' in text


def test_pictures_of_videos_with_the_same_name_do_not_overwrite_each_other():
    from pathlib import Path

    from deepfake_lab.video.detect_video import picture_stems

    stems = picture_stems([Path("a/clip.mp4"), Path("b/clip.mp4"), Path("c/other.mp4")])
    assert stems[Path("c/other.mp4")] == "other.mp4"
    a, b = stems[Path("a/clip.mp4")], stems[Path("b/clip.mp4")]
    assert a != b and a.startswith("clip.mp4.") and b.startswith("clip.mp4.")
