"""A generator zoo: many small generator families, for detectors that must generalise.

``deepfake-lab data zoo --real DIR --out DIR`` (:func:`build_zoo`) makes one fake image per
real face for each family and writes them at the detector's size into ``OUT/<family>/``, so
that the folders can be given to ``train detector --fake OUT/fam1 --fake OUT/fam2 ...`` (each
folder one source) and a family left out for testing (leave-one-family-out).

**Families** (``<upsampler>-<norm>-<trained|untrained>``, e.g. ``tconv-bn-trained``) are
autoencoders (:class:`deepfake_lab.models.zoo.ZooAutoencoder`): the same encoder shape down
to a ``size/16`` px latent and a decoder whose four 2x up-sampling stages use the family's
up-sampler (``tconv``, ``nearest``, ``bilinear``, ``pixelshuffle``), with or without
BatchNorm. The up-sampler is what differs because it is where CNN generators leave their
spectral fingerprint.

- ``trained``: ``steps`` Adam steps of L1 reconstruction on the real faces (random 64 px
  crops, aligned to the 16 px stride grid, so a step costs the same at any ``size``; the
  network is fully convolutional, so it then runs on whole faces). The image is the
  decoder's reconstruction: every pixel comes out of the family's up-sampling chain, as in
  a GAN.
- ``untrained``: the randomly initialised autoencoder (BatchNorm statistics set from the
  reals, no weight update). A random decoder does not draw a face, and a picture that is no
  face would teach a detector "not a face" instead of a fingerprint. So the image is the
  real face plus the random decoder's output *high-passed* (minus a Gaussian blur of
  sigma :data:`HIGHPASS_SIGMA` px) and scaled to a fixed RMS (:data:`RESIDUAL_RMS`, about
  37 dB PSNR): the low frequencies (identity, colour, shading) stay the real face's, and what
  is added is the texture an untrained up-sampling chain makes of that face (it is
  computed from the face through the random encoder), i.e. the family's fingerprint at a
  strength that does not depend on the family. The blur is the same for every family, so
  it cannot itself tell families apart.

Every image ``i`` of a family is made from real face ``i`` (``zoo.json`` lists the reals
with their sha256: keep them out of a test split). Manifest rows carry
``group = "real:<sha256 prefix>"``, so a detector's split keeps all images made from one
face together.

**Unwatermarked on purpose.** Images get the AI-generated metadata (PNG text + XMP, which
does not change pixels) but not the invisible pixel watermark: a zoo is a detector's
training set, and a mark present only in the fake class is a label a detector would learn
instead of the generator's artefacts. The same holds for ``--gan`` samples.

**Determinism**: each family's weights, batches and crops come from a seed derived from
``seed`` and the family name alone, so the same call gives the same pixels on the CPU, and
adding a family changes no other.

The family recipe (naming, seeding, training, GAN sampling) is in
:mod:`deepfake_lab.data.zoo_families`; reading the reals and writing ``zoo.json``,
``manifest.jsonl`` and ``preview.png`` in :mod:`deepfake_lab.data.zoo_files`.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from deepfake_lab import __version__
from deepfake_lab.data.zoo_families import (
    HIGHPASS_SIGMA,
    RESIDUAL_RMS,
    TRAIN_CROP,
    TRAINING_MODES,
    Progress,
    build_family,
    family_names,
    family_seed,
    gan_folder,
    highpass,
    parse_family,
    sample_gan,
    untrained_image,
)
from deepfake_lab.data.zoo_files import (
    MANIFEST,
    PREVIEW,
    PREVIEW_COLUMNS,
    ZOO_JSON,
    is_complete,
    load_reals,
    previous_zoo,
    write_preview,
    write_records,
)
from deepfake_lab.errors import UserError
from deepfake_lab.io import check_output_paths
from deepfake_lab.models.zoo import STAGES, check_size

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_LR",
    "DEFAULT_STEPS",
    "HIGHPASS_SIGMA",
    "MANIFEST",
    "PREVIEW",
    "PREVIEW_COLUMNS",
    "RESIDUAL_RMS",
    "TRAINING_MODES",
    "TRAIN_CROP",
    "WATERMARK_NOTE",
    "ZOO_JSON",
    "ZOO_VERSION",
    "Progress",
    "build_zoo",
    "family_names",
    "family_seed",
    "highpass",
    "parse_family",
    "select_families",
    "untrained_image",
]

#: Bump when a change to the recipe changes the images (a folder built before is redone).
ZOO_VERSION = 1
DEFAULT_STEPS = 300
DEFAULT_BATCH = 8
DEFAULT_LR = 2e-3

WATERMARK_NOTE = (
    "zoo images carry the AI-generated metadata tag (PNG text + XMP, no pixel change) but not "
    "the invisible pixel watermark: a zoo is a detector's training set, and a watermark "
    "present only in the fake class is a label shortcut a detector would learn instead of "
    "the generators' artefacts"
)


def select_families(spec: str | Sequence[str] | None) -> list[str]:
    """Families named by a comma list and/or globs (``"tconv-*,*-none-trained"``), in the
    order of :func:`family_names`; None or empty: all; ``"none"``: no family (only the
    ``gans``' samples).

    Raises:
        UserError: a name or glob that matches no family (the message lists them).
    """
    known = family_names()
    if spec is None:
        return known
    items = spec.split(",") if isinstance(spec, str) else [p for s in spec for p in s.split(",")]
    patterns = [p.strip() for p in items if p.strip()]
    if not patterns:
        return known
    if patterns == ["none"]:
        return []
    chosen: set[str] = set()
    for pattern in patterns:
        hits = fnmatch.filter(known, pattern)
        if not hits:
            raise UserError(f"unknown zoo family {pattern!r}; known: {', '.join(known)}")
        chosen.update(hits)
    return [f for f in known if f in chosen]


def build_zoo(
    real: str | Path,
    out: str | Path,
    families: str | Sequence[str] | None = None,
    size: int = 128,
    num: int | None = None,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    gans: Sequence[str | Path] = (),
    batch: int = DEFAULT_BATCH,
    lr: float = DEFAULT_LR,
    device: str = "cpu",
    preview: bool = True,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build (or complete) a generator zoo in ``out``.

    Args:
        real: folder of real faces (``data prepare`` output or any image tree); images are
            centre-cropped and resized to ``size``; undecodable files are skipped and counted.
        out: output folder: ``<family>/00000.png ...``, ``gan-<run>/...``, ``zoo.json``,
            ``manifest.jsonl``, ``preview.png``. Nothing is written outside it. Re-running
            into the same folder with the same parameters skips finished families and adds
            new ones.
        families: comma list and/or globs of :func:`family_names` (None: all).
        size: side of every written image, px (the detector's input size; multiple of 16).
        num: use the first ``num`` decodable reals (in ``list_images`` order; None: all);
            every family makes one image per real.
        steps: training steps of the ``trained`` families.
        seed: zoo seed; each family's seed derives from it and the family name.
        gans: generator runs, checkpoints or exports (``generate``'s ``RUN_OR_CKPT``): each
            writes as many samples as there are reals (seeds ``seed ... seed + n - 1``, as
            ``generate --seed``) into ``gan-<run name>/``, resized from its native size to
            ``size`` (Lanczos).
        batch: images per training step and per forward pass.
        lr: Adam learning rate of the trained families.
        device: ``cpu`` (bit-reproducible), ``cuda`` or ``auto``.
        preview: write ``preview.png``: a row of reals, then one row per family.
        progress: ``progress(stage, done, total)`` callback (stages ``reals``, then one per
            family and GAN).
        log: called with one line per finished family (e.g. ``print``).

    Returns:
        The record written to ``out/zoo.json``.

    Raises:
        UserError: bad arguments, a missing or empty ``real`` folder, an unknown family, a
            GAN that does not load, or an ``out`` that holds something else; all before
            anything is written.
    """
    from deepfake_lab.devices import resolve_device

    real, out = Path(real), Path(out)
    try:
        check_size(size)
    except ValueError:
        raise UserError(f"--size must be a multiple of 16 in [16, 1024], got {size}") from None
    if num is not None and num < 1:
        raise UserError(f"--num must be at least 1, got {num}")
    if steps < 1:
        raise UserError(f"--steps must be at least 1, got {steps}")
    if batch < 1:
        raise UserError(f"--batch must be at least 1, got {batch}")
    if not lr > 0:
        raise UserError(f"learning rate must be positive, got {lr}")
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    chosen = select_families(families)
    if not chosen and not gans:
        raise UserError("--families none builds nothing without a --gan; name a GAN run")
    if not real.is_dir():
        raise UserError(f"real folder not found: {real}")
    check_output_paths(folders={"--out": out})
    if out.resolve() == real.resolve() or real.resolve() in out.resolve().parents:
        raise UserError(f"--out {out} is inside --real {real}; choose a folder outside it")
    previous = previous_zoo(out)
    dev = resolve_device(device)

    from deepfake_lab.models.generators.loading import load_generator

    gan_models: dict[str, tuple[Path, Any]] = {}
    for g in gans:
        folder = gan_folder(Path(g))
        if folder in gan_models:
            raise UserError(
                f"two --gan runs would both write {folder}/; export one under another name"
            )
        gan_models[folder] = (Path(g), load_generator(g, device=dev))

    reals, real_records, skipped = load_reals(real, size, num, progress)
    n = reals.shape[0]
    params = {
        "real": str(real),
        "size": size,
        "num": n,
        "steps": steps,
        "seed": seed,
        "batch": batch,
        "lr": lr,
        "zoo_version": ZOO_VERSION,
        "reals_sha256": hashlib.sha256(
            "".join(r["sha256"] for r in real_records).encode()
        ).hexdigest(),
    }
    if previous is not None:
        old = previous.get("params", {})
        diff = [k for k in params if k != "real" and old.get(k) != params[k]]
        if diff:
            said = ", ".join(f"{k} {old.get(k)!r} -> {params[k]!r}" for k in diff)
            raise UserError(
                f"{out} holds a zoo built with other parameters ({said}); "
                "choose a new --out or remove it"
            )
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "tool": "deepfake-lab",
        "version": __version__,
        "zoo_version": ZOO_VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "params": params,
        "command": {
            "families": chosen,
            "gans": [str(g) for g in gans],
            "device": str(dev),
            # CPU results are bit-identical for the same torch version and thread count.
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "num_requested": num,
        },
        "reals": {
            "folder": str(real),
            "count": n,
            "skipped": len(skipped),
            "skipped_files": skipped,
            "note": "image i of every family is made from real file i; keep these reals out of "
            "any test split (manifest rows carry group 'real:<sha256[:16]>' to that end)",
            "files": real_records,
        },
        "provenance": {"pixel_watermark": False, "metadata_tag": True, "why": WATERMARK_NOTE},
        "recipe": {
            "trained": f"Adam (lr {lr}, betas 0.9/0.99), L1 reconstruction, batch {batch}, "
            f"{steps} steps on random {min(size, TRAIN_CROP)} px crops aligned to the "
            f"{2**STAGES} px stride grid; image = the reconstruction",
            "untrained": "random init, BatchNorm statistics from the reals; image = real + "
            f"(decoder output - Gaussian blur sigma {HIGHPASS_SIGMA} px) scaled to RMS "
            f"{RESIDUAL_RMS} (in [-1, 1]) per image",
        },
        "families": dict((previous or {}).get("families", {})),
        "gans": dict((previous or {}).get("gans", {})),
        "manifest": MANIFEST,
    }
    say = log or (lambda line: None)
    for name in chosen:
        if is_complete(out, record["families"].get(name), n):
            say(f"{name}: already complete, skipped")
            continue
        record["families"][name] = build_family(
            name, out, reals, real_records, params, dev, progress
        )
        write_records(out, record)
        fam = record["families"][name]
        say(
            f"{name}: {n} images in {fam['seconds']:.1f} s "
            f"(reconstruction L1 {fam['recon_l1']:.3f}, PSNR {fam['psnr_db']:.1f} dB)"
        )
    for folder, (source, loaded) in gan_models.items():
        old = record["gans"].get(folder)
        same = (
            old and old.get("model", {}).get("weights_sha256") == loaded.identity["weights_sha256"]
        )
        if same and is_complete(out, old, n):
            say(f"{folder}: already complete, skipped")
            continue
        record["gans"][folder] = sample_gan(
            folder, source, loaded, out, n, size, seed, dev, progress
        )
        write_records(out, record)
        say(f"{folder}: {n} samples in {record['gans'][folder]['seconds']:.1f} s")
    if preview:
        write_preview(out, reals, record)
        record["preview"] = PREVIEW
    write_records(out, record)
    return record
