"""detect.scan_summary: the counts behind the summary line, computed in the API."""

from __future__ import annotations

from deepfake_lab.detect import LABELS, scan_summary


def test_counts_every_label_and_the_video_cases() -> None:
    records = [
        {"label": "fake", "watermark": True},
        {"label": "fake", "watermark": False},
        {"label": "real", "error": "decoding stopped at frame 40: damaged"},
        {"label": "uncertain"},
        {"label": "no_face"},
        {"label": "error", "error": "no frame between 10 s and 12 s"},
        {"label": "error", "error": "not a video"},
        {"label": "skipped", "error": "a FIFO (named pipe), not a regular file"},
    ]
    sm = scan_summary(records)
    assert sm["total"] == 8
    assert sm["labels"] == {
        "fake": 2,
        "real": 1,
        "uncertain": 1,
        "no_face": 1,
        "error": 2,
        "skipped": 1,
    }
    assert set(sm["labels"]) == set(LABELS)
    assert (sm["unreadable"], sm["no_frame_in_range"], sm["cut_short"]) == (1, 1, 1)
    assert sm["watermarked"] == 1
    assert scan_summary([])["total"] == 0
