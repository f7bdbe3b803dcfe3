"""Benchmark: frames/s of the full video scan (decode, find faces, align, score) and the
share of time in each stage, against real time.

    python bench/video_scan.py --video ../shared/videos/ffpp_anchor_real.mp4 \
        --face-model ../shared/models/face_detection_yunet.onnx [--detector RUN] [--stride 1]

Without ``--detector`` a randomly initialised ``npr`` at 64 px scores the faces (the cost
of scoring does not depend on the weights). The scan runs twice; the second is timed.
"""

from __future__ import annotations

import argparse
import time

import torch

from deepfake_lab.errors import UserError
from deepfake_lab.faces.detectors import FACE_DETECTORS
from deepfake_lab.models.detectors import build_detector
from deepfake_lab.models.detectors.loading import LoadedDetector, load_detector
from deepfake_lab.video.decode import probe
from deepfake_lab.video.scan import scan_video


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", default="../shared/videos/ffpp_anchor_real.mp4")
    ap.add_argument("--face-model", default="../shared/models/face_detection_yunet.onnx")
    ap.add_argument("--detector", help="detector run, checkpoint or export")
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--max-frames", type=int)
    ap.add_argument("--device", default="cpu", help="where the detector scores: cpu | cuda")
    args = ap.parse_args()
    if args.stride < 1 or (args.max_frames is not None and args.max_frames < 1):
        ap.error("--stride and --max-frames must be 1 or more")
    try:
        info = probe(args.video)
    except UserError as exc:
        ap.error(str(exc))
    if args.detector:
        det = load_detector(args.detector, args.device)
    else:
        torch.manual_seed(0)
        det = LoadedDetector(build_detector("npr", size=64).eval().to(args.device))
    finder = FACE_DETECTORS.build("yunet", face_model=args.face_model)
    scan_video(args.video, det, finder, stride=args.stride, max_frames=8)  # warm-up
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    scan = scan_video(
        args.video, det, finder, stride=args.stride, max_frames=args.max_frames, timings=timings
    )
    wall = time.perf_counter() - t0
    fps = scan.frames / wall
    real_time = info.fps / args.stride  # sampled frames per second of video
    print(
        f"{args.video}: {info.width}x{info.height} @ {info.fps:g} fps, stride {args.stride}, "
        f"{torch.get_num_threads()} threads, detector on {args.device}"
    )
    print(
        f"  {scan.frames} frames in {wall:.2f} s: {fps:.1f} frames/s = "
        f"{fps / real_time:.2f}x real time; {sum(scan.faces_per_frame)} faces, "
        f"{len(scan.tracks)} tracks"
    )
    for stage, sec in sorted(timings.items(), key=lambda kv: -kv[1]):
        print(f"  {stage:<7} {sec:6.2f} s  {100 * sec / wall:5.1f} %")


if __name__ == "__main__":
    main()
