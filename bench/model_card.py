"""The numbers of a detector's model card, measured the way a new user meets it.

    python bench/model_card.py --images FFHQ=DATA/data/ffhq-128 \\
        --images portraits=DATA/data/portraits-cc0-256 --videos DATA/videos
    python bench/model_card.py --detector RUN ...      # any detector, not only the default

Everything is scored exactly as ``deepfake-lab detect [MODEL] PATH`` scores it: without
``--detector``, the detector ``detect`` answers with when no model is named
(``DEFAULT_DETECTOR``), faces detected and aligned (``--faces``, the default there); each
video through the video scan (mean of the face scores, every frame). Printed as Markdown:

- per image folder: how many images, the share called fake at the detector's threshold and
  the median P(fake) (folders of real photos: that share is the false-positive rate);
- per video: its verdict, P(fake) and the share of its frames called fake;
- for each pair of videos named ``X_real.*`` and ``X_manipulated.*``, the frame ROC-AUC of
  the manipulated frames against the real ones (the most suspicious face of each frame).

Nothing is trained or fitted here: the card reports what the weights do as they are.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from deepfake_lab.detect import detect_images
from deepfake_lab.errors import UserError
from deepfake_lab.models.detectors.loading import DEFAULT_DETECTOR
from deepfake_lab.safe_text import visible
from deepfake_lab.video.detect_video import detect_video_files, is_video
from deepfake_lab.video.scan import frame_maxima


def cell(text: str) -> str:
    """A file or folder name as one Markdown table cell: every character visible, no ``|``."""
    return visible(text).replace("|", "\\|")


def pairs(names: list[str]) -> list[tuple[str, str, str]]:
    """``(stem, real, manipulated)`` for each ``STEM_real.*`` / ``STEM_manipulated.*`` pair."""
    found: dict[str, dict[str, str]] = {}
    for name in names:
        m = re.fullmatch(r"(.+)_(real|manipulated)\.[^.]+", name)
        if m:
            found.setdefault(m[1], {})[m[2]] = name
    return [(k, v["real"], v["manipulated"]) for k, v in sorted(found.items()) if len(v) == 2]


def main() -> None:
    try:
        card()
    except UserError as exc:  # a missing folder or detector: one line, no traceback
        raise SystemExit(f"error: {exc}") from None


def card() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", default=DEFAULT_DETECTOR, help="default: detect's default")
    ap.add_argument("--images", action="append", default=[], help="NAME=DIR (repeatable)")
    ap.add_argument("--videos", type=Path, help="a folder of videos")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.videos is not None and not args.videos.is_dir():
        raise SystemExit(f"error: --videos {visible(args.videos)} is not a folder")
    print(f"detector: {visible(args.detector)}\n")
    if args.images:
        print("| images | n | called fake | median P(fake) |\n|---|---:|---:|---:|")
    for spec in args.images:
        name, _, folder = spec.partition("=")
        if not folder:
            raise SystemExit(f"--images wants NAME=DIR, got {spec!r}")
        records = detect_images(args.detector, [folder], device=args.device, faces=True)
        p = np.array([r["probability"] for r in records if r["probability"] is not None])
        fake = sum(r["label"] == "fake" for r in records)
        no_face = sum(r["label"] == "no_face" for r in records)
        tail = f" ({no_face} without a face)" if no_face else ""
        median = f"{np.median(p):.3f}" if len(p) else "-"
        print(f"| {cell(name)} | {len(records)}{tail} | {fake / max(len(p), 1):.1%} | {median} |")
    if args.videos is None:
        return
    videos = sorted(p for p in args.videos.iterdir() if is_video(p))
    records = detect_video_files(args.detector, videos, device=args.device)
    print("\n| video | verdict | P(fake) | frames called fake |\n|---|---|---:|---:|")
    scores = {}
    for r in records:
        name = Path(r["path"]).name
        frames = r.get("frame_scores") or []  # None for a video that could not be read
        s = scores[name] = frame_maxima([f["faces"] for f in frames])
        p = "-" if r["probability"] is None else f"{r['probability']:.3f}"
        share = f"{(s >= r['threshold']).mean():.1%} of {len(s)}" if len(s) else "no face"
        print(f"| {cell(name)} | {r['label']} | {p} | {share} |")
    for stem, real, manipulated in pairs(list(scores)):
        r, f = scores[real], scores[manipulated]
        if not (len(r) and len(f)):
            print(f"\n{cell(stem)}: a video without faces, no frame ROC-AUC")
            continue
        y = np.r_[np.zeros(len(r)), np.ones(len(f))]
        print(f"\n{cell(stem)}: frame ROC-AUC {roc_auc_score(y, np.r_[r, f]):.3f}")


if __name__ == "__main__":
    main()
