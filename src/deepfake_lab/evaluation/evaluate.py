"""Evaluating a generator (or a folder of generated images) against a folder of real images.

One feature pass per side feeds every metric: images are streamed through the extractor in
batches into a :class:`~deepfake_lab.metrics.frechet.FeatureStatsAccumulator`; the (N, d)
feature matrix is kept only when KID, precision/recall or density/coverage are asked for, and
class logits only for IS. The reference side comes from :class:`StatsCache` when it can.

Image preprocessing (the same path on both sides, so that resizing never differs between
real and fake):

- every image becomes uint8 RGB at ``size`` x ``size`` before feature extraction. Real files
  go through :func:`~deepfake_lab.data.dataset.load_rgb` (decode, centre crop to square,
  OpenCV INTER_AREA down / LANCZOS4 up), as training data does. Generator outputs are
  quantised exactly as ``generate`` saves them (:func:`~deepfake_lab.report.grid.to_uint8`)
  and, only when ``size`` differs from the generator's, resized by the same centre-crop
  function. Evaluating a generator therefore gives the same numbers as evaluating the PNGs
  ``generate`` writes with the same seeds;
- ``size`` defaults to the generator's resolution, or for a folder of generated images to
  the reference images' own size (the short side of the first readable reference image);
- the extractor then applies its own input resizing (e.g. 32 px for the CIFAR ResNets) to
  both sides alike.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from deepfake_lab import __version__
from deepfake_lab.data.dataset import list_images, load_rgb
from deepfake_lab.data.decode import IMAGE_SUFFIXES, DecodeError
from deepfake_lab.errors import UserError
from deepfake_lab.faces.align import center_crop
from deepfake_lab.metrics.features import FeatureExtractor
from deepfake_lab.metrics.frechet import FeatureStatsAccumulator
from deepfake_lab.metrics.registry import (
    DC_K,
    GEN_METRICS,
    IS_SPLITS,
    KID_SUBSET_SIZE,
    KID_SUBSETS,
    PR_K,
    build_extractor,
    check_counts,
    compute_metrics,
    parse_metrics,
)
from deepfake_lab.metrics.stats_cache import FeatureSet, StatsCache

__all__ = ["evaluate_gan", "metric_rows"]

PREPROCESS = (
    "uint8 RGB at size px: files via load_rgb (centre crop, cv2 INTER_AREA/LANCZOS4), "
    "generator output via to_uint8; then x / 127.5 - 1"
)

Progress = Callable[[str, int, int], None]


def _extractor_device(fx: FeatureExtractor) -> torch.device:
    for t in (*fx.parameters(), *fx.buffers()):
        return t.device
    return torch.device("cpu")


class _FeaturePass:
    """Streams image batches through an extractor, keeping what the metrics need."""

    def __init__(self, fx: FeatureExtractor, capacity: int, keep_features: bool, logits: bool):
        self.fx, self.device = fx, _extractor_device(fx)
        self.acc = FeatureStatsAccumulator(fx.dim)
        # Preallocated so that the matrix never exists twice (as list + concatenation).
        self.features = np.empty((capacity, fx.dim), np.float32) if keep_features else None
        self.logits: list[np.ndarray] | None = [] if logits else None
        self.count = 0

    @torch.no_grad()
    def update(self, images: torch.Tensor) -> None:
        """Add images, float (B, 3, H, W) in [-1, 1]."""
        x = images.to(self.device)
        if self.logits is not None:
            feats, logits = self.fx.features_and_logits(x)
            self.logits.append(logits.float().cpu().numpy())
        else:
            feats = self.fx.features(x)
        f = feats.float().cpu().numpy()
        self.acc.update(f)
        if self.features is not None:
            self.features[self.count : self.count + len(f)] = f
        self.count += len(f)

    def result(self, skipped: int = 0) -> FeatureSet:
        mu, sigma = self.acc.stats() if self.count >= 2 else (np.zeros(0), np.zeros((0, 0)))
        feats = self.features[: self.count] if self.features is not None else None
        logits = np.concatenate(self.logits) if self.logits else None
        return FeatureSet(mu, sigma, self.count, feats, logits, skipped)


def _to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1], as FaceDataset.batch does."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return x.to(torch.float32).div_(127.5).sub_(1.0)


def _file_batches(
    paths: Sequence[Path], size: int, batch: int, skipped: list[Path]
) -> Iterator[torch.Tensor]:
    """Decoded images in batches; undecodable files are appended to ``skipped``."""
    chunk: list[np.ndarray] = []
    for p in paths:
        try:
            chunk.append(load_rgb(p, size))
        except DecodeError:
            skipped.append(p)
            continue
        if len(chunk) == batch:
            yield _to_float(np.stack(chunk))
            chunk = []
    if chunk:
        yield _to_float(np.stack(chunk))


def _generator_batches(
    G: torch.nn.Module, num: int, seed: int, batch: int, size: int, device: torch.device
) -> Iterator[torch.Tensor]:
    """Images of seeds ``seed .. seed + num - 1`` (as ``generate`` draws them), in batches."""
    from deepfake_lab.models.latents import latents_for_seeds
    from deepfake_lab.pixels import to_uint8

    for start in range(0, num, batch):
        seeds = list(range(seed + start, seed + min(start + batch, num)))
        with torch.no_grad():
            out = G(latents_for_seeds(seeds, G.z_dim).to(device)).float().cpu()
        pixels = to_uint8(out)  # what a saved PNG would hold
        if pixels.shape[1:3] != (size, size):
            pixels = np.stack([center_crop(img, size)[0] for img in pixels])
        yield _to_float(pixels)


def _is_generator(src: Path) -> bool:
    """A checkpoint file, export folder or run folder; False for a folder of images."""
    from deepfake_lab.runs.checkpoint import list_checkpoints

    if src.is_file():
        if src.suffix.lower() in IMAGE_SUFFIXES:
            raise UserError(f"{src} is one image; give a folder of images, a run or a checkpoint")
        return True
    if not src.is_dir():
        raise UserError(f"not found: {src} (give a run folder, checkpoint, export or image folder)")
    if (src / "config.json").is_file() and (src / "model.safetensors").is_file():
        return True
    # A run folder whose checkpoints are gone is still a run (an error later), never a folder
    # of "generated images" made of its sample grids.
    return (src / "checkpoints").is_dir() or bool(list_checkpoints(src))


def _image_files(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"{what} folder not found: {folder}")
    paths = list_images(folder)
    if not paths:
        raise UserError(
            f"no images found in {what} folder {folder} "
            f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return paths


def _native_size(paths: Sequence[Path]) -> int:
    """Short side of the first readable image (the size a folder-vs-folder run uses)."""
    from PIL import Image

    for p in paths:
        try:
            with Image.open(p) as im:  # reads the header only
                return int(min(im.size))
        except (OSError, ValueError):
            continue
    raise UserError(f"none of the {len(paths)} reference images can be read")


def evaluate_gan(
    source: str | Path,
    ref: str | Path,
    metrics: str | Sequence[str] = ("fid", "kid", "pr"),
    features: str | FeatureExtractor = "resnet56-cifar",
    weights: str | Path | None = None,
    num: int = 10000,
    batch: int = 64,
    device: str = "auto",
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    size: int | None = None,
    trust_torchscript: bool = False,
) -> dict[str, Any]:
    """Compare generated images with a folder of real ones in one feature space.

    Args:
        source: run folder, checkpoint or export (``num`` images drawn from seeds
            ``seed .. seed + num - 1``), or a folder of images (its first ``num`` images, in
            the order ``list_images`` gives; all of them when it holds fewer).
        ref: folder of real images; its statistics are cached (see ``StatsCache``).
        metrics: names from ``METRICS``, as a list or a comma-separated string.
        features: a registered extractor name, or a built ``FeatureExtractor`` (used on its
            own device, e.g. during training).
        weights: the extractor's weights file, when it needs one.
        num: generated images to evaluate (>= 1).
        batch: images per forward pass.
        device: auto | cpu | cuda, for the generator and a built extractor.
        seed: first latent seed; also seeds the KID subsets.
        cache_dir: reference-statistics cache; ``None`` means the default location.
        progress: called as ``progress(stage, done, total)`` with stage "fake" or "real".
        size: image side in px for both sets; default: the generator's resolution, or the
            reference images' own size for a folder of images.
        trust_torchscript: ``features="torchscript"`` only: run the code of the module file
            ``weights`` (it can do anything a program can; refused without this).

    Returns:
        A JSON-ready dict: ``fid`` plus, for spaces not labelled "FID", the same value under
        the label's key (e.g. ``fd_r56``); ``kid_mean``, ``kid_std``, ``precision``,
        ``recall``, ``density``, ``coverage``, ``is_mean``, ``is_std`` (those asked for);
        ``feature_space``, ``label``, ``num_fake``, ``num_real``, ``source``, ``ref``,
        ``model`` (generator identity, when one was used), ``settings``, ``ref_cache``,
        ``skipped_fake``/``skipped_real``, ``seconds``, ``versions``, ``created``.

    Raises:
        UserError: unknown metric, IS on a non-classifier, missing files, too few images.
    """
    from deepfake_lab.devices import resolve_device

    names = parse_metrics(metrics)
    if num < 1:
        raise UserError("--num must be at least 1")
    if batch < 1:
        raise UserError("--batch must be at least 1")
    if size is not None and size < 1:
        raise UserError("--size must be at least 1")
    src, ref = Path(source), Path(ref)
    ref_paths = _image_files(ref, "reference")
    use_generator = _is_generator(src)
    fake_paths = [] if use_generator else _image_files(src, "generated-image")[:num]
    n_fake_planned = num if use_generator else len(fake_paths)
    check_counts(names, n_fake_planned, len(ref_paths), "there are")

    dev = resolve_device(device)
    fx = build_extractor(features, weights, dev, trust_torchscript)
    if any(GEN_METRICS[m].needs_logits for m in names) and not fx.is_classifier:
        raise UserError(f"is needs a classifier feature space; {fx.name} is not one")
    keep_matrix = any(GEN_METRICS[m].needs_features for m in names)
    timing: dict[str, float] = {}
    result: dict[str, Any] = {"source": str(src), "ref": str(ref)}

    # Generated side: streamed, never cached (it changes every time).
    t0 = time.perf_counter()
    needs_logits = any(GEN_METRICS[m].needs_logits for m in names)
    fake_pass = _FeaturePass(fx, n_fake_planned, keep_matrix, needs_logits)
    skipped_fake: list[Path] = []
    if use_generator:
        from deepfake_lab.models.generators.loading import load_generator

        loaded = load_generator(src, device=dev)
        result["model"] = loaded.identity
        size = size or int(loaded.model.size)
        batches = _generator_batches(loaded.model, num, seed, batch, size, dev)
    else:
        size = size or _native_size(ref_paths)
        batches = _file_batches(fake_paths, size, batch, skipped_fake)
    for images in batches:
        fake_pass.update(images)
        if progress:
            progress("fake", fake_pass.count + len(skipped_fake), n_fake_planned)
    fake = fake_pass.result(len(skipped_fake))
    timing["fake"] = time.perf_counter() - t0

    # Reference side: from the cache, or one pass that is then stored.
    t0 = time.perf_counter()
    settings = {"size": size, "preprocess": PREPROCESS, "cv2": cv2.__version__}

    def compute_ref() -> FeatureSet:
        ref_pass = _FeaturePass(fx, len(ref_paths), keep_matrix, logits=False)
        skipped: list[Path] = []
        for images in _file_batches(ref_paths, size, batch, skipped):
            ref_pass.update(images)
            if progress:
                progress("real", ref_pass.count + len(skipped), len(ref_paths))
        # Checked before the result can be cached: a stats entry needs 2+ images.
        check_counts(names, fake.count, ref_pass.count, "after skipping unreadable files,")
        return ref_pass.result(len(skipped))

    if names == ["is"]:  # IS looks at the generated images only
        real, ref_cache = FeatureSet(np.zeros(0), np.zeros((0, 0)), 0), None
    else:
        real, cache_path, hit = StatsCache(cache_dir).get_or_compute(
            ref, ref_paths, fx.cache_key(), settings, compute_ref, keep_matrix
        )
        ref_cache = {"path": str(cache_path), "hit": hit}
    timing["real"] = time.perf_counter() - t0
    check_counts(names, fake.count, real.count, "after skipping unreadable files,")

    t0 = time.perf_counter()
    result.update(compute_metrics(names, fx.label, fake, real, seed))
    timing["metrics"] = time.perf_counter() - t0
    kid_m = min(KID_SUBSET_SIZE, fake.count, real.count)
    result.update(
        {
            "metrics": names,
            "feature_space": fx.name,
            "label": fx.label,
            "num_fake": fake.count,
            "num_real": real.count,
            "skipped_fake": fake.skipped,
            "skipped_real": real.skipped,
            "settings": {
                "size": size,
                "preprocess": PREPROCESS,
                "seed": seed,
                "kid_subsets": KID_SUBSETS,
                "kid_subset_size": kid_m,
                "pr_k": PR_K,
                "dc_k": DC_K,
                "is_splits": IS_SPLITS,
            },
            "ref_cache": ref_cache,
            "seconds": {k: round(v, 3) for k, v in timing.items()},
            "versions": {
                "deepfake-lab": __version__,
                "torch": torch.__version__,
                "numpy": np.__version__,
            },
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
    )
    return result


def metric_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(metric, value) rows for a table; the Frechet distance is named by the space's label
    (``FD-R56``), and "FID" only in the Inception space."""
    rows: list[tuple[str, str]] = []
    if "fid" in result:
        rows.append((result["label"], f"{result['fid']:.4f}"))
    if "kid_mean" in result:
        # With both sets no larger than the subset size, every subset is the whole of both
        # sets: the std is 0 by construction, not a sign of a stable estimate.
        n = result.get("settings", {}).get("kid_subset_size")
        whole = n == result.get("num_fake") == result.get("num_real")
        spread = " (one subset: all images)" if whole else f" ± {result['kid_std']:.6f}"
        rows.append(("KID", f"{result['kid_mean']:.6f}{spread}"))
    for key in ("precision", "recall", "density", "coverage"):
        if key in result:
            rows.append((key, f"{result[key]:.4f}"))
    if "is_mean" in result:
        rows.append(("IS", f"{result['is_mean']:.4f} ± {result['is_std']:.4f}"))
    return rows
