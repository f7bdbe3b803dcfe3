"""The mouth of a face track: its signals, and the 68 landmarks kept on request."""

from __future__ import annotations

import numpy as np

from avtools import lip_tracker_or_skip, yunet_finder
from conftest import shared_path


def test_mouth_track_keeps_the_landmarks_its_lip_gap_was_read_from():
    from deepfake_lab.video.lips import lip_opening
    from deepfake_lab.video.mouth import mouth_track

    lips = lip_tracker_or_skip()
    clip = shared_path("videos", "grid_bbaf2n_real.mpg")
    finder = yunet_finder()
    track = mouth_track(clip, finder, 0.0, 1.0, lips=lips, keep_landmarks=True)
    pts = track.landmarks
    assert pts.shape == (track.track_frames, 68, 2) and track.track_frames == 25
    assert np.allclose(lip_opening(pts), track.signals["lip-gap"][track.present])
    # A face the right way up inside the 360x288 frame: eyes (36-47) above the mouth (48-67).
    assert (pts >= 0).all() and (pts[..., 0] < 360).all() and (pts[..., 1] < 288).all()
    assert (pts[:, 36:48, 1].mean(1) < pts[:, 48:68, 1].mean(1)).all()
    assert mouth_track(clip, finder, 0.0, 1.0, lips=lips).landmarks is None
