"""Scanning a video: decode, find and align faces per frame, link them into tracks, score
every face with a detector, and aggregate per track and per video.

Aggregations of per-face P(fake) into one video score (``AGGREGATIONS``):

- ``mean``: mean over all scored faces of all frames;
- ``max-face``: per frame the most suspicious face, then the mean over frames (a video
  with one manipulated face among real ones still scores high);
- ``topk``: mean of the ``k`` highest frame scores (short manipulated segments).

Per track: the mean score, its frames, and temporal consistency (``temporal``) from the
landmarks and aligned crops.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from deepfake_lab.errors import UserError
from deepfake_lab.faces.align import align_face
from deepfake_lab.faces.detectors import FaceDetector
from deepfake_lab.video.decode import (
    VideoDecodeError,
    frames_expected,
    iter_evenly_spaced,
    iter_frames,
    probe,
)
from deepfake_lab.video.temporal import track_consistency
from deepfake_lab.video.tracks import Track, link_tracks

AGGREGATIONS = ("mean", "max-face", "topk")
_CROP = 64  # side of the crops kept for temporal measures


@dataclass
class VideoScan:
    """What ``scan_video`` found.

    Attributes:
        path: the video.
        frames: sampled frames decoded.
        faces_per_frame: faces found in each sampled frame.
        frame_scores: per sampled frame, ``{"index", "time_s", "faces": [P(fake), ...]}``.
        tracks: per track, ``{"id", "frames", "first_s", "last_s", "score", "times",
            "scores", "consistency"}``.
        score: the aggregated video P(fake), or None without any face.
        aggregation: how ``score`` was formed.
        label: "fake" / "real" at the detector's threshold, or "no_face".
        error: where decoding stopped early, if it did (the frames before are used).
    """

    path: str
    frames: int
    faces_per_frame: list[int]
    frame_scores: list[dict[str, Any]]
    tracks: list[dict[str, Any]]
    score: float | None
    aggregation: str
    label: str
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def frame_maxima(frame_probs: list[list[float]]) -> np.ndarray:
    """(F,) P(fake) of each frame's most suspicious face, frames without a face left out."""
    return np.array([max(p) for p in frame_probs if p], dtype=np.float64)


def aggregate(frame_probs: list[list[float]], how: str = "mean", k: int = 5) -> float | None:
    """One score from per-frame lists of per-face P(fake) (see the module docstring)."""
    if how not in AGGREGATIONS:
        raise UserError(f"unknown aggregation {how!r}; choose one of {', '.join(AGGREGATIONS)}")
    scored = [p for p in frame_probs if p]
    if not scored:
        return None
    if how == "mean":
        return float(np.mean([x for p in scored for x in p]))
    per_frame = frame_maxima(scored)
    if how == "max-face":
        return float(per_frame.mean())
    return float(np.sort(per_frame)[-max(1, k) :].mean())


def scan_video(
    path: str | Path,
    det: Any,
    finder: FaceDetector,
    stride: int = 1,
    max_frames: int | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
    aggregation: str = "mean",
    topk: int = 5,
    min_face: int = 32,
    frames: int | None = None,
    batch: int = 64,
    timings: dict[str, float] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> VideoScan:
    """Scan one video.

    Args:
        path: the video file.
        det: a ``LoadedDetector`` (``models.detectors.loading.load_detector``).
        finder: a face detector (``faces.detectors``).
        stride, max_frames, start_s, end_s: which frames (``decode.iter_frames``).
        frames: instead, this many frames evenly spaced over the whole video
            (``decode.iter_evenly_spaced``), the usual protocol for scoring many videos.
            Such frames are not consecutive (unless there are as many as the video's), so
            a track's jitter and flicker are None.
        aggregation: ``AGGREGATIONS``; ``topk`` is its k.
        min_face: ignore faces whose box is smaller (px).
        batch: faces per detector forward pass.
        timings: when given, seconds spent per stage are added to it under "decode",
            "faces", "align", "score" and "tracks" (``bench/video_scan.py``).
        progress: called as ``progress(frames done, frames expected or None)`` after
            each frame.

    Returns:
        A ``VideoScan``. A decoding failure part-way is recorded in ``error`` and the frames
        decoded before it are still scored; one before any frame raises.
    """
    if aggregation not in AGGREGATIONS:
        raise UserError(
            f"unknown aggregation {aggregation!r}; choose one of {', '.join(AGGREGATIONS)}"
        )
    if topk < 1 or batch < 1:
        raise UserError(f"topk and batch must be 1 or more, got {topk} and {batch}")
    info = probe(path)
    expected = (
        frames_expected(info, stride, start_s, end_s, max_frames)
        if frames is None
        else min(frames, frames_expected(info) or frames)
    )
    records: list[tuple[int, float, list]] = []  # (index, time, faces)
    pending: list[np.ndarray] = []  # detector-size crops not scored yet
    scored: list[np.ndarray] = []  # P(fake) of the crops scored so far, in face order
    small: dict[tuple[int, int], np.ndarray] = {}  # (frame, face) -> _CROP crop
    error = None
    clock = _StageClock(timings)
    try:
        decoded = (
            iter_frames(path, stride, start_s, end_s, max_frames)
            if frames is None
            else iter_evenly_spaced(path, frames)
        )
        # What training did to each image (native-size floor, re-encoding); scorers that
        # take images as they come (``det`` is duck-typed: logits, size, threshold) lack it.
        prepare = getattr(det, "prepare", None) or (lambda img: img)
        while True:
            with clock("decode"):
                frame = next(decoded, None)
            if frame is None:
                break
            with clock("faces"):
                faces = [f for f in finder.detect(frame.image) if f.min_side >= min_face]
            kept = []
            with clock("align"):
                for f in faces:
                    try:
                        crop = align_face(frame.image, f.landmarks, det.size)[0]
                    except ValueError:  # degenerate landmarks
                        continue
                    # The temporal measures need only a small crop: shrink the one we have
                    # rather than warping the frame a second time.
                    small[(frame.index, len(kept))] = (
                        crop
                        if det.size == _CROP
                        else cv2.resize(crop, (_CROP, _CROP), interpolation=cv2.INTER_AREA)
                    )
                    kept.append(f)
                    pending.append(prepare(crop))
            records.append((frame.index, frame.time_s, kept))
            if progress is not None:
                progress(len(records), expected)
            if len(pending) >= batch:  # score as we go: memory stays one batch of crops
                with clock("score"):
                    scored.append(_score(det, pending, batch))
                pending = []
    except VideoDecodeError as exc:
        if not records:
            raise
        error = str(exc)
    with clock("score"):
        scored.append(_score(det, pending, batch))
    probs = np.concatenate(scored)
    frame_scores, pos = [], 0
    for index, time_s, faces in records:
        p = probs[pos : pos + len(faces)].tolist()
        pos += len(faces)
        frame_scores.append({"index": index, "time_s": round(time_s, 4), "faces": p})
    score = aggregate([f["faces"] for f in frame_scores], aggregation, topk)
    with clock("tracks"):
        tracks = link_tracks(records, min_length=1)
        by_frame = {r[0]: (r[2], fs) for r, fs in zip(records, frame_scores, strict=True)}
        # Evenly spaced frames are consecutive only when every frame was taken; otherwise
        # step 0 leaves no run to measure (jitter and flicker None).
        step = stride if frames is None else int(_consecutive([r[0] for r in records]))
        track_rows = [_track_row(t, by_frame, small, step) for t in tracks]
    label = "no_face" if score is None else ("fake" if _is_fake(det, score) else "real")
    return VideoScan(
        str(path),
        len(records),
        [len(f) for _, _, f in records],
        frame_scores,
        track_rows,
        score,
        aggregation,
        label,
        error,
        {
            "fps": info.fps,
            "width": info.width,
            "height": info.height,
            "stride": stride if frames is None else None,
            "evenly_spaced": frames,
        },
    )


def _consecutive(indices: list[int]) -> bool:
    return len(indices) > 1 and bool(np.all(np.diff(indices) == 1))


class _StageClock:
    """Adds the seconds spent inside ``with clock(stage):`` to ``timings[stage]``."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        if self.timings is None:
            yield
            return
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t0


def _score(det: Any, crops: list[np.ndarray], batch: int) -> np.ndarray:
    if not crops:
        return np.zeros(0)
    out = []
    dev = next(det.model.parameters()).device
    for start in range(0, len(crops), batch):
        x = torch.from_numpy(np.stack(crops[start : start + batch])).permute(0, 3, 1, 2)
        x = x.float().div(127.5).sub(1).to(dev)
        out.append(det.probabilities_from_logits(det.logits(x).cpu().numpy()))
    return np.concatenate(out)


def _is_fake(det: Any, prob: float) -> bool:
    # The calibrated threshold is on the logit scale; compare on the probability scale.
    return prob >= det.threshold


def _track_row(
    track: Track,
    by_frame: dict[int, tuple[list, dict[str, Any]]],
    small: dict[tuple[int, int], np.ndarray],
    stride: int,
) -> dict[str, Any]:
    """One track's record; ``by_frame``: frame index -> (its faces, its frame scores)."""
    scores, times, lms, crops, idx = [], [], [], [], []
    for tf in track.faces:
        faces, fs = by_frame[tf.frame_index]
        j = next(i for i, f in enumerate(faces) if f is tf.face)
        scores.append(fs["faces"][j])
        times.append(tf.time_s)
        lms.append(tf.face.landmarks)
        crops.append(small[(tf.frame_index, j)])
        idx.append(tf.frame_index)
    consistency = track_consistency(np.stack(lms), np.stack(crops), np.array(idx), step=stride)
    return {
        "id": track.id,
        "frames": len(track),
        "first_s": round(times[0], 4),
        "last_s": round(times[-1], 4),
        "score": float(np.mean(scores)),
        "times": [round(t, 4) for t in times],
        "scores": scores,
        "consistency": consistency.to_dict(),
    }
