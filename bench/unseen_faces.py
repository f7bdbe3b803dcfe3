"""Faces from generators this project does not have, for the detectors' held-out test.

    python bench/unseen_faces.py --videos ../shared/videos --out runs/unseen-faces

Every ``--stride``-th frame of each clip is decoded with OpenCV, written as PNG, and run
through ``data prepare`` (YuNet, FFHQ alignment, ``--size`` px), giving one aligned-face
folder per clip:

- ``ffpp-real`` / ``ffpp-manipulated``: a FaceForensics++ (c23) pair, the same news-anchor
  shot before and after face manipulation; both H.264 at the same quality, so a detector
  that separates them is not reading the codec;
- ``sadtalker``: a talking head synthesized by SadTalker (no real counterpart: use it for
  the detection rate at a detector's calibrated threshold).

Frames of one clip are strongly correlated: treat the counts as one clip's worth of
evidence, not as independent samples.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2

from deepfake_lab.data.prepare import prepare_dataset

CLIPS = {
    "ffpp-real": "ffpp_anchor_real.mp4",
    "ffpp-manipulated": "ffpp_anchor_manipulated.mp4",
    "sadtalker": "sadtalker_art0_synthesized.mp4",
}


def dump_frames(video: Path, out: Path, stride: int) -> int:
    """Write every ``stride``-th frame of ``video`` as ``out/frameNNNNN.png``; returns count."""
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SystemExit(f"cannot open {video} (OpenCV has no decoder for it?)")
    n = i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % stride == 0:
            cv2.imwrite(str(out / f"frame{i:05d}.png"), frame)
            n += 1
        i += 1
    cap.release()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", default="../shared/videos")
    ap.add_argument("--out", default="runs/unseen-faces")
    ap.add_argument("--stride", type=int, default=3)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--face-model", default="../shared/models/face_detection_yunet.onnx")
    args = ap.parse_args()
    face_model = args.face_model if Path(args.face_model).is_file() else None
    for name, clip in CLIPS.items():
        video = Path(args.videos) / clip
        if not video.is_file():
            print(f"{name}: {video} missing, skipped")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            frames = dump_frames(video, Path(tmp), args.stride)
            s = prepare_dataset(
                Path(tmp), Path(args.out) / name, size=args.size, face_model=face_model
            )
        print(f"{name}: {frames} frames, {s.kept} aligned faces, rejected {s.rejected}")


if __name__ == "__main__":
    main()
