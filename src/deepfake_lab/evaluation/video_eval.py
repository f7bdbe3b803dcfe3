"""Video-level evaluation of a detector: labelled videos in, ROC-AUC per video out.

Each video is scanned (:func:`deepfake_lab.video.scan.scan_video`: faces found, aligned,
scored and tracked) and its per-face P(fake) are aggregated into one video score. Metrics
are then computed over videos, the unit a moderator acts on, and, for comparison, over
faces (every face labelled with its video's label). Face-level numbers count one video's
many faces as if they were independent, so their intervals would be too narrow: only the
video-level metrics get bootstrap intervals.

The video score is the aggregate of calibrated probabilities, so the detector's calibrated
threshold (on the probability scale) is the operating point at both levels. Every
aggregation is scored from the same scan, so choosing one costs no second pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deepfake_lab.errors import UserError
from deepfake_lab.metrics.detection import bootstrap_intervals, detection_metrics, per_source_table
from deepfake_lab.video.scan import AGGREGATIONS, aggregate

REAL, FAKE = 0, 1
#: Videos needed in each class before bootstrap intervals are given.
MIN_PER_CLASS = 5


def split_labelled(
    real: list[Path], fake: list[Path]
) -> tuple[list[Path], list[Path], list[tuple[Path, int, str]]]:
    """Separate the image folders from the videos among ``--real`` and ``--fake`` paths.

    Args:
        real, fake: folders (of images and/or videos) or video files.

    Returns:
        ``(real image paths, fake image paths, labelled videos)``; a video's source is the
        name its ``--fake`` argument gets as an image source (its folder's name), so the
        per-source tables of images and videos line up.
    """
    from deepfake_lab.data.detection import fake_source_names
    from deepfake_lab.video.detect_video import split_media

    real_images, fake_images, videos = [], [], []
    for p in real:
        images, found = split_media([Path(p)])
        real_images += images
        videos += [(v, REAL, "real") for v in found]
    for p, name in zip(fake, fake_source_names([Path(f) for f in fake]), strict=True):
        images, found = split_media([Path(p)])
        fake_images += images
        videos += [(v, FAKE, name) for v in found]
    return real_images, fake_images, videos


def layout_videos(root: Path) -> list[tuple[Path, int, str]]:
    """``(video, label, source)`` for the videos of a labelled dataset tree.

    The labels come from the layout (``data.layouts.detect_layout``): FaceForensics++
    originals are real and each manipulation method is a fake source; VoxCeleb is all real.

    Raises:
        UserError: ``root`` holds no video its layout labels.
    """
    from deepfake_lab.data.layouts import detect_layout, list_sources

    layout = detect_layout(Path(root))
    _, videos, _ = list_sources(layout)
    out = []
    for v in videos:
        if v.labels.label == "real":
            out.append((v.path, REAL, "real"))
        elif v.labels.label == "fake":
            out.append((v.path, FAKE, v.labels.method or "fake"))
    if not out:
        raise UserError(
            f"no labelled videos under {root} ({layout.describe()}); --videos takes a "
            "FaceForensics++ or VoxCeleb tree, else give --real/--fake"
        )
    return out


def evaluate_videos(
    det: Any,
    videos: list[tuple[Path, int, str]],
    finder: Any,
    aggregation: str = "mean",
    topk: int = 5,
    stride: int = 1,
    max_frames: int | None = None,
    frames: int | None = 32,
    n_boot: int = 1000,
    plot_dir: Path | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Scan labelled videos and measure the detector per video and per face.

    Args:
        det: a ``LoadedDetector``.
        videos: ``(path, label, source)``; label 1 = fake, 0 = real.
        finder: a face detector (``faces.detectors``).
        aggregation: the video score used for the point metrics (``AGGREGATIONS``).
        topk: k of the ``topk`` aggregation.
        stride, max_frames: which frames, when ``frames`` is None.
        frames: score this many evenly spaced frames per video (default 32); None: every
            ``stride``-th frame.
        n_boot: bootstrap resamples for the video-level 95% intervals (0: none).
        plot_dir: write ``video_roc.png`` (video- and face-level ROC) here.
        progress: called as ``progress(done, total)`` after each video.

    Returns:
        ``video``: metrics over videos (``detection_metrics`` keys, ``intervals``,
        ``per_source``); ``frame``: metrics over faces; ``aggregations``: ROC-AUC / AP /
        accuracy of every aggregation; ``videos``: per video ``path``, ``label``,
        ``source``, ``probability``, ``scores`` (every aggregation), ``frames``, ``faces``,
        ``tracks``, ``error``; ``excluded``: videos without a face or that could not be read
        (they are left out of the metrics, never counted as right or wrong); ``plots``.

    Raises:
        UserError: no real or no fake video could be scored.
    """
    from deepfake_lab.video.detect_video import detect_videos

    if aggregation not in AGGREGATIONS:
        raise UserError(
            f"unknown aggregation {aggregation!r}; choose one of {', '.join(AGGREGATIONS)}"
        )
    if topk < 1:
        raise UserError(f"--topk must be 1 or more, got {topk}")
    rows, excluded = [], []
    for i, (path, label, source) in enumerate(videos):
        rec = detect_videos(
            det,
            [path],
            finder,
            None,
            aggregation,
            topk,
            stride,
            max_frames,
            frames,
            watermark=False,
        )[0]
        if progress is not None:
            progress(i + 1, len(videos))
        base = {"path": str(path), "label": label, "source": source}
        if rec["probability"] is None:
            why = rec.get("error") or "no face found in the sampled frames"
            excluded.append(base | {"reason": rec["label"], "detail": why})
            continue
        per_frame = [f["faces"] for f in rec["frame_scores"]]
        rows.append(
            base
            | {
                "probability": rec["probability"],
                "scores": {a: aggregate(per_frame, a, topk) for a in AGGREGATIONS},
                "frames": rec["frames"],
                "faces": int(sum(len(p) for p in per_frame)),
                "tracks": len(rec["tracks"]),
                "face_scores": [x for p in per_frame for x in p],
                "error": rec.get("error"),
            }
        )
    labels = np.array([r["label"] for r in rows], dtype=np.int64)
    for value, name, flag in ((REAL, "real", "--real"), (FAKE, "fake", "--fake")):
        if not (labels == value).any():
            raise UserError(
                f"no {name} video could be scored ({len(excluded)} excluded: no face or "
                f"unreadable); give {flag} videos in which faces are found"
            )
    thr = float(det.threshold)
    probs = np.array([r["probability"] for r in rows])
    video = detection_metrics(labels, probs, thr, probs=probs)
    fewest = int(min((labels == REAL).sum(), (labels == FAKE).sum()))
    if n_boot and fewest >= MIN_PER_CLASS:
        video["intervals"] = bootstrap_intervals(labels, probs, thr, n_boot=n_boot, probs=probs)
    elif n_boot:
        # Resampling one or two videos per class gives a zero-width interval: false comfort.
        video["notes"].append(
            f"no 95% intervals: {fewest} video(s) in the smaller class, fewer than "
            f"{MIN_PER_CLASS}; a video-level ROC-AUC over so few videos says little"
        )
    video["per_source"] = per_source_table(labels, probs, [r["source"] for r in rows], thr)
    face_labels = np.concatenate([np.full(r["faces"], r["label"]) for r in rows])
    face_probs = np.concatenate([r["face_scores"] for r in rows])
    frame = detection_metrics(face_labels, face_probs, thr, probs=face_probs)
    by_agg = {}
    for a in AGGREGATIONS:
        s = np.array([r["scores"][a] for r in rows])
        m = detection_metrics(labels, s, thr, probs=s)
        by_agg[a] = {k: m[k] for k in ("roc_auc", "ap", "eer", "accuracy")}
    for r in rows:
        del r["face_scores"]  # folded into ``frame``; per-face lists belong to ``detect``
    plots = {}
    if plot_dir is not None:
        from deepfake_lab.report.detection_plots import plot_roc

        curves = {"per video": (labels, probs), "per face": (face_labels, face_probs)}
        path = plot_roc(curves, Path(plot_dir) / "video_roc.png", title=f"videos ({aggregation})")
        plots["video_roc"] = str(path)
    return {
        "aggregation": aggregation,
        "topk": topk,
        "sampling": {"evenly_spaced": frames}
        if frames is not None
        else {"stride": stride, "max_frames": max_frames},
        "threshold": thr,
        "video": video,
        "frame": frame,
        "aggregations": by_agg,
        "videos": rows,
        "excluded": excluded,
        "plots": plots,
    }
