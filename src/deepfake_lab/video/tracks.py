"""Face tracks: linking per-frame face detections of a video into tracks.

Each sampled frame's faces are matched to the tracks alive at that point by an optimal
assignment (``scipy.optimize.linear_sum_assignment``) on a cost that mixes box overlap and
landmark distance; a track survives up to ``max_gap`` sampled frames without a match (a
missed detection, a blink of occlusion), so one face keeps one track id through short
misses. Unmatched faces start new tracks.

Cost of linking face ``f`` to track ``t`` (whose last face is ``g``):
``(1 - IoU(f, g)) + landmark_weight * mean_landmark_distance(f, g) / inter_ocular(g)``;
a pair is allowed only if ``IoU >= min_iou`` or the landmark distance is under
``max_landmark`` inter-ocular distances (fast head motion can drop the overlap while the
landmarks still agree).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from deepfake_lab.errors import UserError
from deepfake_lab.faces.detectors.base import Face

_BLOCKED = 1e6  # cost of a pair the gates forbid


@dataclass
class TrackedFace:
    """One face of one track.

    Attributes:
        frame_index: index of its frame in the video stream.
        time_s: that frame's time in seconds.
        face: the detection (box, landmarks, score) in frame pixels.
    """

    frame_index: int
    time_s: float
    face: Face


@dataclass
class Track:
    """A face followed through the video.

    Attributes:
        id: 0, 1, ... in order of first appearance.
        faces: its detections in frame order (frames where it was missed are absent).
    """

    id: int
    faces: list[TrackedFace] = field(default_factory=list)

    @property
    def first_frame(self) -> int:
        return self.faces[0].frame_index

    @property
    def last_frame(self) -> int:
        return self.faces[-1].frame_index

    def __len__(self) -> int:
        return len(self.faces)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes (0 when either is empty)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def inter_ocular(face: Face) -> float:
    """Distance between the two eye landmarks (the first two of the five), at least 1 px."""
    return max(1.0, float(np.linalg.norm(face.landmarks[0] - face.landmarks[1])))


def landmark_distance(a: Face, b: Face) -> float:
    """Mean distance of corresponding landmarks, in inter-ocular distances of ``b``."""
    return float(np.linalg.norm(a.landmarks - b.landmarks, axis=1).mean()) / inter_ocular(b)


def link_tracks(
    frames: Iterable[tuple[int, float, list[Face]]],
    min_iou: float = 0.3,
    max_landmark: float = 0.5,
    landmark_weight: float = 0.5,
    max_gap: int = 5,
    min_length: int = 1,
) -> list[Track]:
    """Link detections into tracks.

    Args:
        frames: ``(frame_index, time_s, faces)`` per sampled frame, in increasing frame order
            (frames with no face too: they age the tracks).
        min_iou: box overlap that allows a link.
        max_landmark: landmark distance (inter-ocular units) that allows a link without
            overlap.
        landmark_weight: weight of the landmark term in the cost.
        max_gap: sampled frames a track may go unmatched before it ends.
        min_length: drop tracks with fewer faces (spurious detections).

    Returns:
        Tracks in order of first appearance, ids renumbered 0, 1, ... after dropping.

    Raises:
        UserError: bad parameters, or frames out of order.
    """
    if not 0 <= min_iou <= 1 or max_landmark < 0 or max_gap < 0 or min_length < 1:
        raise UserError(
            "tracking needs 0 <= min_iou <= 1, max_landmark >= 0, max_gap >= 0, min_length >= 1"
        )
    tracks: list[Track] = []
    alive: list[tuple[Track, int]] = []  # (track, sampled frames since its last match)
    last_index = None
    for frame_index, time_s, faces in frames:
        if last_index is not None and frame_index <= last_index:
            raise UserError(
                f"frames must come in increasing order ({frame_index} after {last_index})"
            )
        last_index = frame_index
        matched_tracks: set[int] = set()
        matched_faces: set[int] = set()
        if alive and faces:
            cost = np.full((len(alive), len(faces)), _BLOCKED)
            for i, (track, _) in enumerate(alive):
                prev = track.faces[-1].face
                for j, f in enumerate(faces):
                    overlap = iou(f.box, prev.box)
                    lm = landmark_distance(f, prev)
                    if overlap >= min_iou or lm <= max_landmark:
                        cost[i, j] = (1 - overlap) + landmark_weight * lm
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols, strict=True):
                if cost[i, j] < _BLOCKED:
                    alive[i][0].faces.append(TrackedFace(frame_index, time_s, faces[j]))
                    matched_tracks.add(i)
                    matched_faces.add(j)
        # Age the unmatched tracks; end those past the gap.
        alive = [
            (t, 0 if i in matched_tracks else age + 1)
            for i, (t, age) in enumerate(alive)
            if i in matched_tracks or age + 1 <= max_gap
        ]
        for j, f in enumerate(faces):
            if j not in matched_faces:
                track = Track(len(tracks), [TrackedFace(frame_index, time_s, f)])
                tracks.append(track)
                alive.append((track, 0))
    kept = [t for t in tracks if len(t) >= min_length]
    for new_id, t in enumerate(kept):
        t.id = new_id
    return kept
