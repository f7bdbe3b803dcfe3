"""Face tracks: detections linked across frames, through misses and crossings."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_lab.errors import UserError
from deepfake_lab.faces.detectors.base import Face
from deepfake_lab.video.tracks import iou, landmark_distance, link_tracks


def _face(x: float, y: float, size: float = 40.0, score: float = 0.9) -> Face:
    """A face box at (x, y) with plausible landmarks inside it."""
    rel = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]])
    return Face((x, y, size, size), (rel * size + [x, y]).astype(np.float32), score)


def test_iou_and_landmark_distance():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    a, b = _face(0, 0), _face(4, 0)  # moved by 4 px; eyes 16 px apart
    assert landmark_distance(a, b) == pytest.approx(4 / 16)


def test_two_faces_keep_their_ids_through_a_missed_frame():
    frames = []
    for k in range(10):
        faces = [_face(10 + 2 * k, 20), _face(200 - 2 * k, 30)]
        if k == 4:
            faces = faces[1:]  # face 0 missed in one frame
        frames.append((3 * k, 3 * k / 25, faces))
    tracks = link_tracks(frames, max_gap=2)
    assert len(tracks) == 2
    left, right = tracks
    assert [tf.frame_index for tf in right.faces] == [3 * k for k in range(10)]
    assert len(left) == 9 and 12 not in [tf.frame_index for tf in left.faces]
    assert all(tf.face.box[0] < 100 for tf in left.faces)  # never swapped with the other face


def test_a_long_gap_starts_a_new_track_and_short_tracks_can_be_dropped():
    frames = [(k, k / 25, [_face(50, 50)] if k < 3 or k > 9 else []) for k in range(14)]
    frames.append((14, 14 / 25, [_face(50, 50), _face(300, 300)]))  # one-frame blip
    tracks = link_tracks(frames, max_gap=3)
    assert [len(t) for t in tracks] == [3, 5, 1]
    tracks = link_tracks(frames, max_gap=3, min_length=2)
    assert [t.id for t in tracks] == [0, 1] and [len(t) for t in tracks] == [3, 5]


def test_fast_motion_links_by_landmarks_when_boxes_stop_overlapping():
    # 30 px jump of a 40 px face: IoU 0.14, landmarks 1.9 inter-ocular distances apart.
    frames = [(0, 0.0, [_face(0, 0)]), (1, 0.04, [_face(30, 0)])]
    assert len(link_tracks(frames, min_iou=0.3, max_landmark=0.5)) == 2
    assert len(link_tracks(frames, min_iou=0.3, max_landmark=2.0)) == 1


def test_frames_out_of_order_are_refused():
    with pytest.raises(UserError, match="increasing order"):
        link_tracks([(5, 0.2, []), (3, 0.1, [])])
    with pytest.raises(UserError):
        link_tracks([], min_iou=2)
