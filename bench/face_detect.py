"""Benchmark: faces found by each detector when ``data prepare`` runs on a folder of portraits.

Runs :func:`deepfake_lab.data.prepare.prepare_dataset` on the folder once per detector, each
into a fresh ``OUT/<detector>/`` dataset, and prints one row per detector: faces found out of
the images found, rejections by reason, images/s of the whole pipeline (decode, detect,
align, write) and the path of the aligned montage. The issue's aim: yunet finds >= 95 of the
100 portraits of ``../shared/data/portraits-cc0-256``.

    python bench/face_detect.py [SRC] [--out runs/face-detect] [--face-model PATH]
                                [--detectors yunet,haar] [--size 128] [--min-face 32]

Relative defaults are resolved against the repository root, not the working directory.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import cv2

from deepfake_lab.data import manifest as mf
from deepfake_lab.data.prepare import PrepareSummary, prepare_dataset
from deepfake_lab.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SRC = ROOT.parent / "shared" / "data" / "portraits-cc0-256"
DEFAULT_MODEL = ROOT.parent / "shared" / "models" / "face_detection_yunet.onnx"
DEFAULT_OUT = ROOT / "runs" / "face-detect"

# What prepare_dataset writes into its output folder: only such a folder is wiped and redone.
_OURS = {mf.IMAGES, mf.MANIFEST, mf.REJECTED, mf.SUMMARY, mf.MONTAGE, ".prepare.lock"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", nargs="?", type=Path, default=DEFAULT_SRC, help="folder of photos")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="one dataset per detector")
    ap.add_argument("--face-model", type=Path, default=DEFAULT_MODEL, help="YuNet ONNX file")
    ap.add_argument("--detectors", default="yunet,haar", help="comma-separated names")
    ap.add_argument("--size", type=int, default=128, help="side of the aligned crops")
    ap.add_argument("--min-face", type=int, default=32, help="smallest face box side, px")
    args = ap.parse_args(argv)
    try:
        rows = run(
            _from_root(args.src),
            _from_root(args.out),
            _from_root(args.face_model),
            [d.strip() for d in args.detectors.split(",") if d.strip()],
            args.size,
            args.min_face,
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_table(rows)
    return 0


def run(
    src: Path, out: Path, face_model: Path, detectors: list[str], size: int, min_face: int
) -> list[PrepareSummary]:
    """One fresh ``prepare_dataset`` run per detector; their summaries."""
    if not src.is_dir():
        raise UserError(
            f"benchmark folder {src} not found; pass a folder of photos as SRC "
            f"(default: {DEFAULT_SRC})"
        )
    if not detectors:
        raise UserError("--detectors names no detector")
    summaries = []
    for name in detectors:
        dest = out / name
        _clear(dest)
        model = face_model if name == "yunet" else None
        print(f"{name}: preparing {src} -> {dest} ...", file=sys.stderr, flush=True)
        summaries.append(
            prepare_dataset(
                src, dest, size=size, detector=name, face_model=model, min_face=min_face
            )
        )
    return summaries


def print_table(rows: list[PrepareSummary]) -> None:
    """Print one line per detector."""
    header = ("detector", "faces found", "rejected", "images/s", "montage")
    lines = [header]
    for s in rows:
        rejected = ", ".join(f"{k} {v}" for k, v in s.rejected.items()) or "-"
        montage = Path(s.out) / mf.MONTAGE
        lines.append(
            (
                str(s.detector),
                f"{s.kept} / {s.found}",
                rejected,
                f"{s.images_per_s:.1f}",
                str(montage) if montage.is_file() else "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for i, line in enumerate(lines):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    if rows:
        s = rows[0]
        print(
            f"\n{s.found} images from {s.src}; crops {s.size} px; images/s covers decode, "
            f"detect, align and PNG write ({cv2.getNumThreads()} OpenCV threads)"
        )


def _clear(dest: Path) -> None:
    """Remove an earlier benchmark dataset at ``dest`` so that every run starts fresh."""
    if not dest.exists():
        return
    if not dest.is_dir():
        raise UserError(f"{dest} exists and is not a folder; choose another --out")
    foreign = [p.name for p in dest.iterdir() if p.name not in _OURS and p.suffix != ".tmp"]
    if foreign:
        raise UserError(
            f"{dest} holds files that data prepare did not write ({', '.join(sorted(foreign))}); "
            "choose another --out"
        )
    shutil.rmtree(dest)


def _from_root(path: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else ROOT / path


if __name__ == "__main__":
    sys.exit(main())
