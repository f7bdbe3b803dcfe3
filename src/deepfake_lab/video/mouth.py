"""The mouth of a talking face, one value per video frame: what ``avsync`` correlates with
the audio.

- ``mouth_openness``: the darkness of the mouth region of the aligned crop (minus its
  10th-percentile luma: an open mouth shows a dark cavity). FFHQ alignment puts the mouth
  at a fixed place, so head motion is already removed.
- ``mouth_motion``: mean absolute luma change of that region (an alternative).
- With a ``lips.LipTracker``: the outer-lip gap of dlib's 68 landmarks (``"lip-gap"``).
- ``mouth_track``: decodes a video and follows the mouth of its longest face track.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_lab.color import luma
from deepfake_lab.errors import UserError

#: Mouth region of an FFHQ-aligned crop, as fractions of its side (rows, cols).
MOUTH_ROWS, MOUTH_COLS = (0.66, 0.90), (0.30, 0.70)


def _mouth_luma(crops: np.ndarray) -> np.ndarray:
    """(T, h, w) luma of the mouth region (``MOUTH_ROWS`` x ``MOUTH_COLS``) of aligned crops."""
    s = crops.shape[1]
    r0, r1 = (int(round(f * s)) for f in MOUTH_ROWS)
    c0, c1 = (int(round(f * s)) for f in MOUTH_COLS)
    return luma(crops[:, r0:r1, c0:c1])


def mouth_motion(crops: np.ndarray) -> np.ndarray:
    """Mouth-region motion per frame of aligned crops.

    Args:
        crops: (T, S, S, 3) uint8 FFHQ-aligned face crops of one track, consecutive frames.

    Returns:
        (T,) float, mean absolute luma change in the mouth region against the previous
        frame (the first frame repeats the second's value).
    """
    if crops.shape[0] < 2:
        raise UserError("mouth motion needs at least 2 frames")
    y = _mouth_luma(crops)
    d = np.abs(np.diff(y, axis=0)).mean(axis=(1, 2))
    return np.concatenate([d[:1], d])


def mouth_openness(crops: np.ndarray) -> np.ndarray:
    """Mouth openness per frame: minus the 10th-percentile luma of the mouth region.

    Args:
        crops: (T, S, S, 3) uint8 FFHQ-aligned crops of one track.

    Returns:
        (T,) float; higher when a dark mouth cavity shows.
    """
    y = _mouth_luma(crops)
    return -np.percentile(y.reshape(len(y), -1), 10, axis=1)


@dataclass
class MouthTrack:
    """The mouth of a video's main face track, one value per decoded frame.

    Attributes:
        signals: name -> (T,) signal: ``"openness"`` (crop darkness), ``"lip-gap"`` (with
            a lip tracker); frames where the track was missed are interpolated.
        present: (T,) bool, whether the track was found in each frame.
        times_s: (T,) start time of every decoded frame.
        fps: the video's frame rate.
        track_frames: P, the frames the track was found in.
        crops: (P, S, S, 3) uint8 aligned crops of those frames with ``keep_crops``, else
            None (a long video's crops do not fit in memory: 27 kB a frame at 96 px).
        landmarks: (P, 68, 2) the lip tracker's landmarks (pixels) of those frames with
            ``keep_landmarks``, else None.
        error: why decoding stopped early (a damaged or cut file), when it did: the
            frames before it are used.
    """

    signals: dict[str, np.ndarray]
    present: np.ndarray
    times_s: np.ndarray
    fps: float
    track_frames: int
    crops: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    error: str | None = None


def mouth_track(
    path: str | Path,
    finder: Any,
    start_s: float | None = None,
    end_s: float | None = None,
    crop: int = 96,
    lips: Any = None,
    keep_crops: bool = False,
    keep_landmarks: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> MouthTrack:
    """Decode every frame in ``[start_s, end_s)`` and follow the mouth of the longest face
    track (see ``avsync.av_sync`` for the arguments). Each face's mouth values are taken
    as it is found, so memory grows by a few numbers a frame (plus the crops with
    ``keep_crops``, the 68 landmarks with ``keep_landmarks`` and a lip tracker).
    ``progress(frames done, frames expected or None)`` is called after each frame. A file
    damaged part-way is read up to the damage (``MouthTrack.error`` says where).

    Raises:
        UserError: no face in the video, or no frame decodes.
    """
    from deepfake_lab.faces.align import align_face
    from deepfake_lab.video.decode import VideoDecodeError, frames_expected, iter_frames, probe
    from deepfake_lab.video.lips import lip_opening
    from deepfake_lab.video.tracks import link_tracks

    info = probe(path)
    records: list[tuple[int, float, list]] = []
    values: dict[tuple[int, int], dict[str, float]] = {}
    crops: dict[tuple[int, int], np.ndarray] = {}
    points: dict[tuple[int, int], np.ndarray] = {}
    expected, error = frames_expected(info, 1, start_s, end_s), None
    try:
        for frame in iter_frames(path, 1, start_s, end_s):
            faces = []
            for f in finder.detect(frame.image)[:4]:
                try:
                    aligned = align_face(frame.image, f.landmarks, crop)[0]
                except ValueError:  # degenerate landmarks (eyes on one point): not a usable face
                    continue
                faces.append(f)
                key = (frame.index, id(f))
                values[key] = {"openness": float(mouth_openness(aligned[None])[0])}
                if lips is not None:
                    pts = lips.landmarks(frame.image, f)
                    values[key]["lip-gap"] = float(lip_opening(pts[None])[0])
                    if keep_landmarks:
                        points[key] = pts
                if keep_crops:
                    crops[key] = aligned
            records.append((frame.index, frame.time_s, faces))
            if progress is not None:
                progress(len(records), expected)
    except VideoDecodeError as exc:
        if not records:
            raise
        error = str(exc)
    tracks = link_tracks(records, max_gap=3)
    if not tracks:
        raise UserError(f"{path}: no face found, so no mouth to follow")
    main = max(tracks, key=len)
    index = [r[0] for r in records]
    keys = {tf.frame_index: (tf.frame_index, id(tf.face)) for tf in main.faces}
    found = [i for i in index if i in keys]
    names = ["openness"] + (["lip-gap"] if lips is not None else [])
    # Frames where the track was missed get the signal interpolated from their neighbours.
    signals = {k: np.interp(index, found, [values[keys[i]][k] for i in found]) for k in names}
    stack = np.stack([crops[keys[i]] for i in found]) if keep_crops else None
    marks = np.stack([points[keys[i]] for i in found]) if points else None
    times = np.array([r[1] for r in records])
    present = np.array([i in keys for i in index])
    return MouthTrack(signals, present, times, info.fps, len(main), stack, marks, error)
