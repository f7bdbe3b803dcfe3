"""How far mild warps of real faces move a detector's score: a shortcut probe.

    python bench/warp_sensitivity.py --detector rc20-sbi=runs/RUN \\
        --real ../shared/data/ffhq-128 --real runs/grid-faces --every 3

Each real face is written once as it is and once per edit below (lossless PNG), and every
copy is scored the way ``detect`` scores files. A detector that has learned fakery, not the
look of its training photos, should barely move: none of these edits makes a face fake.
Printed per edit: the mean logit shift against the unedited face, the median logit, and the
share called fake at the detector's calibrated threshold.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from deepfake_lab.augment.geometry import warp
from deepfake_lab.augment.resample import resample_round_trip
from deepfake_lab.augment.robustness import gaussian_blur, h264, jpeg
from deepfake_lab.models.detectors.loading import load_detector
from generalisation import images, logits_of

EDITS = {
    "rotate 3 deg": lambda x: warp(x, degrees=3.0),
    "rotate 10 deg": lambda x: warp(x, degrees=10.0),
    "zoom 1.05": lambda x: warp(x, scale=1.05),
    "zoom 0.95": lambda x: warp(x, scale=0.95),
    "shift 4% (bilinear)": lambda x: warp(x, ty=0.04 * x.shape[0]),
    "shift 6 px (whole)": lambda x: np.ascontiguousarray(np.roll(x, 6, axis=0)),
    "round trip 0.8x bilinear": lambda x: resample_round_trip(
        x, 0.8, cv2.INTER_LINEAR, cv2.INTER_LINEAR
    ),
    "round trip 0.8x lanczos": lambda x: resample_round_trip(
        x, 0.8, cv2.INTER_LANCZOS4, cv2.INTER_LANCZOS4
    ),
    "blur sigma 0.5": lambda x: gaussian_blur(x, 0.5),
    "jpeg q80": lambda x: jpeg(x, 80),
    "h264 crf23": lambda x: h264(x, 23),  # one intra frame, as a video platform keeps it
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", action="append", required=True, help="NAME=RUN_OR_EXPORT")
    ap.add_argument("--real", type=Path, action="append", required=True, help="face folder")
    ap.add_argument("--every", type=int, default=1, help="take every n-th face of each folder")
    ap.add_argument("--out", type=Path, help="write the table as JSON here")
    args = ap.parse_args()
    faces = [p for folder in args.real for p in images(folder)[:: args.every]]
    if not faces:
        raise SystemExit("no images in the --real folders")
    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        for name, edit in {"none": None, **EDITS}.items():
            d = Path(tmp) / str(len(folders))
            d.mkdir()
            for i, path in enumerate(faces):
                img = np.asarray(Image.open(path).convert("RGB"))
                Image.fromarray(img if edit is None else edit(img)).save(d / f"{i:05d}.png")
            folders[name] = sorted(d.iterdir())
        for spec in args.detector:
            label, _, source = spec.partition("=")
            det = load_detector(source or label)
            base = logits_of(det, folders["none"])
            print(f"{label}: {len(faces)} real faces, threshold logit {det.logit_threshold:+.2f}")
            rows = []
            for name, paths in folders.items():
                z = base if name == "none" else logits_of(det, paths)
                row = {
                    "edit": name,
                    "mean_shift": float(np.mean(z - base)),
                    "median_logit": float(np.median(z)),
                    "called_fake": float(np.mean(z >= det.logit_threshold)),
                }
                rows.append(row)
                shift, median = row["mean_shift"], row["median_logit"]
                print(
                    f"  {name:26s} shift {shift:+.2f}  median {median:+.2f}"
                    f"  called fake {100 * row['called_fake']:5.1f}%",
                    flush=True,
                )
            table[label] = rows
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
