"""Per-clip numbers for every shared video: faces, tracks, detector scores, temporal
consistency and audio-visual sync.

    python bench/video_clips.py --detector RUN_OR_EXPORT [--detector ...] \
        [--videos ../shared/videos] [--face-model ../shared/models/face_detection_yunet.onnx]

For each clip (every frame, stride 1): faces per frame (mean, min-max), the tracks and their
lengths, the per-video P(fake) of each detector (mean of the faces and max-face
aggregation), the main track's landmark jitter and flicker, and, where the clip has audio,
the ``av-sync`` offset with its confidence, uncertainty and chance p (with the lip
landmarks when the ``lips`` extra is installed). Prints a Markdown table; ``--json`` writes
everything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from deepfake_lab.faces.detectors import FACE_DETECTORS
from deepfake_lab.models.detectors.loading import load_detector
from deepfake_lab.video.avsync import av_sync
from deepfake_lab.video.decode import VIDEO_SUFFIXES, probe
from deepfake_lab.video.lips import LipTracker, lips_available
from deepfake_lab.video.scan import aggregate, scan_video


def clip_numbers(path: Path, detectors: dict, finder, lips) -> dict:
    """Scan ``path`` with every detector (the faces and tracks are the same for each)."""
    info = probe(path)
    row: dict = {"clip": path.name, "size": f"{info.width}x{info.height}", "fps": info.fps}
    for name, det in detectors.items():
        scan = scan_video(path, det, finder, aggregation="mean")
        per_frame = [f["faces"] for f in scan.frame_scores]
        row[name] = {
            "mean": scan.score,
            "max-face": aggregate(per_frame, "max-face"),
            "label": scan.label,
        }
        if "frames" not in row:
            faces = np.array(scan.faces_per_frame)
            main = max(scan.tracks, key=lambda t: t["frames"]) if scan.tracks else None
            row |= {
                "frames": scan.frames,
                "faces_mean": float(faces.mean()),
                "faces_min": int(faces.min()),
                "faces_max": int(faces.max()),
                "tracks": [t["frames"] for t in scan.tracks],
                "consistency": main["consistency"] if main else None,
            }
    if info.has_audio:
        r = av_sync(path, finder, lips=lips)
        row["av_sync"] = {
            k: r[k]
            for k in (
                "offset_ms",
                "confidence",
                "offset_uncertainty_ms",
                "chance_p",
                "mouth_signals",
            )
        }
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", action="append", required=True, help="run or export")
    ap.add_argument("--videos", type=Path, default=Path("../shared/videos"))
    ap.add_argument("--face-model", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    model = args.face_model or args.videos.parent / "models" / "face_detection_yunet.onnx"
    finder = FACE_DETECTORS.build("yunet", face_model=model)
    dets = {}
    for d in args.detector:
        det = load_detector(d, "cpu")
        dets[f"{det.identity.get('name', 'detector')}@{Path(d).name}"] = det
    lips = LipTracker() if lips_available() else None
    clips = sorted(p for p in args.videos.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    rows = [clip_numbers(p, dets, finder, lips) for p in clips]
    names = list(dets)
    head = ["clip", "frames", "faces/frame", "tracks (frames)"]
    head += [f"P(fake) {n} mean / max-face" for n in names]
    head += ["jitter (IOD)", "flicker", "flicker HF", "av-sync ms (conf, +-unc, chance p)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        c = r["consistency"] or {}
        sync = r.get("av_sync")

        def f(v, fmt="{:.3f}"):
            return "-" if v is None else fmt.format(v)

        cells = [
            r["clip"],
            str(r["frames"]),
            f"{r['faces_mean']:.2f} ({r['faces_min']}-{r['faces_max']})",
            f"{len(r['tracks'])} ({', '.join(map(str, r['tracks']))})",
        ]
        cells += [f"{f(r[n]['mean'])} / {f(r[n]['max-face'])}" for n in names]
        cells += [f(c.get("landmark_jitter")), f(c.get("flicker")), f(c.get("flicker_hf"))]
        cells.append(
            "no audio"
            if sync is None
            else f"{sync['offset_ms']:+.0f} ({sync['confidence']:.2f}, "
            f"+-{sync['offset_uncertainty_ms']:.0f}, p {sync['chance_p']:.2f})"
        )
        print("| " + " | ".join(cells) + " |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
