"""Benchmark: images/s of ``detect``'s image scan with 0, 1 and 2 decoding threads on the same
files, and the cost of a rescan when every file is already in the ``.jsonl`` output.

    python bench/scan_throughput.py [--data DIR] [--model RUN] [--workers 0,1,2] [--limit N]
                                    [--repeats 3] [--batch 64] [--device cpu] [--faces]

``--data`` defaults to ``../shared/data/ffhq-128`` beside the checkout (400 FFHQ faces at
128 px), else 400 procedural faces written to a temporary folder. Without ``--model`` a
randomly initialised ``npr`` at 64 px scores (the cost of scoring does not depend on the
weights). Everything runs in one process: a warm-up scan first, then each setting
``--repeats`` times in turn; the table shows medians and ratios against 1 thread. The
rescan reads, hashes and looks up every file and scores none; it is compared with a full
scan into a fresh ``.jsonl``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from deepfake_lab.data.decode import list_image_paths
from deepfake_lab.detect import detect_images

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "ffhq-128"


def _random_detector(folder: Path, size: int) -> Path:
    """An ``npr`` export with random weights (seeded)."""
    from deepfake_lab.hashing import weights_sha256
    from deepfake_lab.models.detectors import DETECTORS
    from deepfake_lab.models.export_format import DETECTOR_FORMAT, write_export

    torch.manual_seed(0)
    kwargs = {"size": size}
    model = DETECTORS.build("npr", **kwargs).eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {"format": DETECTOR_FORMAT, "name": "npr", "size": size, "kwargs": kwargs}
    meta |= {"weights_sha256": weights_sha256(state), "calibration": None}
    return write_export(folder / "npr", state, meta)


def _procedural_faces(folder: Path, n: int) -> Path:
    from PIL import Image

    from deepfake_lab.data.procedural import render_faces

    folder.mkdir(parents=True)
    for i, face in enumerate(render_faces(n, 128, seed=0)):
        Image.fromarray(face).save(folder / f"{i:05d}.png")
    return folder


def _timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="folder of images (default: FFHQ 128 px)")
    ap.add_argument("--model", help="detector run, checkpoint or export (default: random npr)")
    ap.add_argument("--size", type=int, default=64, help="input px of the random npr")
    ap.add_argument("--workers", default="0,1,2", help="decoding threads to compare")
    ap.add_argument("--limit", type=int, help="scan only the first N images (sorted)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--faces", action="store_true", help="score aligned faces (Haar)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="scan-bench-") as tmp:
        _run(args, Path(tmp))
    return 0


def _run(args: argparse.Namespace, tmp: Path) -> None:
    workers = [int(w) for w in args.workers.split(",")]
    data = args.data or (DEFAULT_DATA if DEFAULT_DATA.is_dir() else None)
    data = data or _procedural_faces(tmp / "faces", 400)
    model = args.model or _random_detector(tmp, args.size)
    paths = list_image_paths([data])[: args.limit] if args.limit else [data]
    kw = {"device": args.device, "batch": args.batch, "faces": args.faces}
    kw["face_detector"] = "haar"

    n = len(detect_images(model, paths, workers=0, **kw))  # warm-up (and the count)
    speed: dict[int, list[float]] = {w: [] for w in workers}
    for _ in range(args.repeats):
        for w in workers:
            seconds, _ = _timed(lambda w=w: detect_images(model, paths, workers=w, **kw))
            speed[w].append(n / seconds)

    full, rescan = [], []
    w_scan = max(workers)
    for r in range(args.repeats):
        out = tmp / f"scan-{r}.jsonl"
        seconds, _ = _timed(lambda out=out: detect_images(model, paths, out, workers=w_scan, **kw))
        full.append(n / seconds)
        seconds, again = _timed(
            lambda out=out: detect_images(model, paths, out, workers=w_scan, **kw)
        )
        assert again.resumed == n, f"the rescan scored {n - again.resumed} files"
        rescan.append(n / seconds)

    print(
        f"{n} images from {data}; model {model}; device {args.device}, batch {args.batch}, "
        f"faces {args.faces}, {torch.get_num_threads()} torch threads; medians of "
        f"{args.repeats} runs"
    )
    base = statistics.median(speed[1]) if 1 in speed else statistics.median(speed[workers[0]])
    print(f"{'setting':<38} {'images/s':>9} {'ratio':>7}")
    for w in workers:
        med = statistics.median(speed[w])
        label = f"scan, --workers {w}" + (" (inline)" if w == 0 else "")
        print(f"{label:<38} {med:9.1f} {med / base:6.2f}x")
    f_med, r_med = statistics.median(full), statistics.median(rescan)
    print(f"{f'full scan into a new .jsonl, --workers {w_scan}':<38} {f_med:9.1f} {'':>7}")
    print(
        f"{f'rescan, all {n} already scored':<38} {r_med:9.1f} {r_med / f_med:6.2f}x "
        "(of the full scan)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
