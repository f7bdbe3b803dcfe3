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
        crops: (P, S, S, 3) uint8 aligned crops of the P frames the track was found in.
        times_s: (T,) start time of every decoded frame.
        fps: the video's frame rate.
        track_frames: P.
    """

    signals: dict[str, np.ndarray]
    crops: np.ndarray
    times_s: np.ndarray
    fps: float
    track_frames: int


def mouth_track(
    path: str | Path,
    finder: Any,
    start_s: float | None = None,
    end_s: float | None = None,
    crop: int = 96,
    lips: Any = None,
) -> MouthTrack:
    """Decode every frame in ``[start_s, end_s)`` and follow the mouth of the longest face
    track (see :func:`av_sync` for the arguments).

    Raises:
        UserError: no face in the video.
    """
    from deepfake_lab.faces.align import align_face
    from deepfake_lab.video.decode import iter_frames, probe
    from deepfake_lab.video.tracks import link_tracks

    info = probe(path)
    records, crops, gaps = [], {}, {}
    for frame in iter_frames(path, 1, start_s, end_s):
        faces = finder.detect(frame.image)[:4]
        records.append((frame.index, frame.time_s, faces))
        for f in faces:
            crops[(frame.index, id(f))] = align_face(frame.image, f.landmarks, crop)[0]
            if lips is not None:
                gaps[(frame.index, id(f))] = lips.opening(frame.image, f)
    tracks = link_tracks(records, max_gap=3)
    if not tracks:
        raise UserError(f"{path}: no face found, so no mouth to follow")
    main = max(tracks, key=len)
    index = [r[0] for r in records]
    keys = {tf.frame_index: (tf.frame_index, id(tf.face)) for tf in main.faces}
    present = [i for i in index if i in keys]
    stack = np.stack([crops[keys[i]] for i in present])
    per_frame = {"openness": mouth_openness(stack)}
    if lips is not None:
        per_frame["lip-gap"] = np.array([gaps[keys[i]] for i in present])
    # Frames where the track was missed get the signal interpolated from their neighbours.
    signals = {k: np.interp(index, present, v) for k, v in per_frame.items()}
    times = np.array([r[1] for r in records])
    return MouthTrack(signals, stack, times, info.fps, len(main))
