"""Benchmark: images/s of ``inception-v3-fid`` feature extraction against torch-fidelity.

Both extractors get the same randomly initialised weights (timing does not depend on the
values; these machines have no real weights) and the same uint8 images, in one process.
After a warm-up, the two are timed alternately (so background load hits both alike) and
the medians are compared. The issue's aim: ours / theirs >= 1.0.

    python bench/features.py [--batch 32] [--size 128] [--repeats 5] [--threads N] [--no-fuse]

Needs torch-fidelity (a test-only dependency: ``pip install --no-deps torch-fidelity==0.4.0``;
no torchvision needed, see :func:`torch_fidelity_inception`).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch

from deepfake_lab.metrics.features.inception import InceptionV3FID
from deepfake_lab.metrics.features.inception_net import random_fid_state_dict

# What torch_fidelity's package import touches in its undeclared-here dependencies:
# torchvision's modules (plus three dataset classes it subclasses) and tqdm's progress bar.
# Nothing of them runs for the Inception extractor.
_STANDINS = {
    "torchvision": {},
    "torchvision.datasets": {c: type(c, (), {}) for c in ("CIFAR10", "CIFAR100", "STL10")},
    "torchvision.models": {},
    "torchvision.transforms": {},
    "torchvision.transforms.functional": {},
    "tqdm": {"tqdm": lambda iterable=None, *args, **kwargs: iterable},
}


def torch_fidelity_inception() -> type:
    """torch-fidelity's ``FeatureExtractorInceptionV3`` class, importable without torchvision.

    ``torch_fidelity/__init__`` imports every extractor, and the CLIP, DINOv2 and VGG ones
    import torchvision at module level; its metrics import tqdm. For each of these packages
    that is absent, an empty stand-in module is put in ``sys.modules`` for the import only
    and removed afterwards, so no other code sees a fake torchvision.

    Raises:
        ImportError: torch-fidelity is not installed.
    """
    if importlib.util.find_spec("torch_fidelity") is None:
        raise ImportError(
            "torch-fidelity is not installed (pip install --no-deps torch-fidelity==0.4.0)"
        )
    fakes: dict[str, types.ModuleType] = {}
    if "torch_fidelity" not in sys.modules:
        for name, attrs in _STANDINS.items():
            top = name.partition(".")[0]
            if top in fakes or importlib.util.find_spec(top) is None:
                fakes[name] = types.ModuleType(name)
                fakes[name].__dict__.update(attrs)
        for name, module in fakes.items():
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(fakes[parent], child, module)
        sys.modules.update(fakes)
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    finally:
        for name, module in fakes.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
    return FeatureExtractorInceptionV3


def _median_seconds(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():  # interleaved: a load spike hits both, not one
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def run(
    batch: int, size: int, repeats: int, warmup: int, threads: int, fuse: bool
) -> dict[str, float]:
    """Time both extractors; returns images/s of each, the ratio and the feature parity."""
    torch.set_num_threads(threads)
    theirs_cls = torch_fidelity_inception()
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "random-inception.pth"
        torch.save(random_fid_state_dict(0), weights)
        ours = InceptionV3FID(weights, allow_unverified=True, fuse=fuse)
        theirs = theirs_cls("inception-v3-compat", ["2048"], feature_extractor_weights_path=weights)
    g = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=g)
    images = pixels.float() / 127.5 - 1  # our API's input; quantises back to ``pixels``

    def theirs_features() -> torch.Tensor:
        with torch.no_grad():  # as ours runs
            return theirs(pixels)[0]

    fns = {"ours": lambda: ours.features(images), "theirs": theirs_features}
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    ref = theirs_features()
    rel = ((ours.features(images) - ref).norm(dim=1) / ref.norm(dim=1)).max().item()
    sec = _median_seconds(fns, repeats)
    return {
        "ours_img_s": batch / sec["ours"],
        "theirs_img_s": batch / sec["theirs"],
        "ratio": sec["theirs"] / sec["ours"],
        "max_rel_feature_diff": rel,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=128, help="image side, px (resized to 299)")
    ap.add_argument("--repeats", type=int, default=5, help="timed batches per extractor")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-fuse", action="store_true", help="time the literal unfused network")
    args = ap.parse_args(argv)
    try:
        r = run(args.batch, args.size, args.repeats, args.warmup, args.threads, not args.no_fuse)
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    variant = "literal layers" if args.no_fuse else "BN folded, 1x1 heads merged, channels_last"
    print(
        f"inception-v3-fid features: batch {args.batch} of {args.size} px uint8 images, "
        f"{args.threads} threads, torch {torch.__version__}, median of {args.repeats}"
    )
    print(f"  ours ({variant}): {r['ours_img_s']:.2f} img/s")
    print(f"  torch-fidelity FeatureExtractorInceptionV3: {r['theirs_img_s']:.2f} img/s")
    print(f"  ratio ours/theirs: {r['ratio']:.2f}")
    print(f"  max relative feature difference on this batch: {r['max_rel_feature_diff']:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
