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
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import hashlib
import math
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepfake_lab import __version__
from deepfake_lab.data.dataset import list_images, load_rgb
from deepfake_lab.data.decode import IMAGE_SUFFIXES, DecodeError
from deepfake_lab.data.detection import file_sha256
from deepfake_lab.errors import UserError
from deepfake_lab.io import atomic_write_json, atomic_write_text, check_output_paths
from deepfake_lab.models.zoo import NORMS, STAGES, UPSAMPLERS, ZooAutoencoder, check_size, describe
from deepfake_lab.provenance.marking import DETECTOR_DATA, Marker
from deepfake_lab.report.grid import to_uint8

#: Bump when a change to the recipe changes the images (a folder built before is redone).
ZOO_VERSION = 1
TRAINING_MODES = ("trained", "untrained")
#: RMS of the added residual of untrained families, in [-1, 1] units (about 37 dB PSNR).
RESIDUAL_RMS = 0.03
#: Sigma (px) of the Gaussian whose blur is subtracted from an untrained decoder's output.
HIGHPASS_SIGMA = 2.0
#: Side of the random crops that trained families learn from (full images when smaller).
TRAIN_CROP = 64
DEFAULT_STEPS = 300
DEFAULT_BATCH = 8
DEFAULT_LR = 2e-3
PREVIEW_COLUMNS = 8
ZOO_JSON, MANIFEST, PREVIEW = "zoo.json", "manifest.jsonl", "preview.png"

WATERMARK_NOTE = (
    "zoo images carry the AI-generated metadata tag (PNG text + XMP, no pixel change) but not "
    "the invisible pixel watermark: a zoo is a detector's training set, and a watermark "
    "present only in the fake class is a label shortcut a detector would learn instead of "
    "the generators' artefacts"
)

Progress = Callable[[str, int, "int | None"], None]


def family_names() -> list[str]:
    """Every family: ``<upsampler>-<norm>-<trained|untrained>``, up-sampler by up-sampler."""
    return [
        f"{up}-{norm}-{mode}"
        for up in UPSAMPLERS.names()
        for norm in NORMS.names()
        for mode in TRAINING_MODES
    ]


def parse_family(name: str) -> tuple[str, str, bool]:
    """``(upsampler, norm, trained)`` of a family name.

    Raises:
        UserError: not a known family (the message lists them).
    """
    parts = name.split("-")
    if (
        len(parts) != 3
        or parts[0] not in UPSAMPLERS.names()
        or parts[1] not in NORMS.names()
        or parts[2] not in TRAINING_MODES
    ):
        raise UserError(f"unknown zoo family {name!r}; known: {', '.join(family_names())}")
    return parts[0], parts[1], parts[2] == "trained"


def select_families(spec: str | Sequence[str] | None) -> list[str]:
    """Families named by a comma list and/or globs (``"tconv-*,*-none-trained"``), in the
    order of :func:`family_names`; None or empty: all.

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
    chosen: set[str] = set()
    for pattern in patterns:
        hits = fnmatch.filter(known, pattern)
        if not hits:
            raise UserError(f"unknown zoo family {pattern!r}; known: {', '.join(known)}")
        chosen.update(hits)
    return [f for f in known if f in chosen]


def family_seed(seed: int, name: str) -> int:
    """A 63-bit seed from the zoo seed and a family (or GAN folder) name alone."""
    digest = hashlib.sha256(f"deepfake-lab-zoo:{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def highpass(x: torch.Tensor, sigma: float = HIGHPASS_SIGMA) -> torch.Tensor:
    """``x`` minus its Gaussian blur (separable, reflect padding), per channel."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    pad = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    if pad < radius:  # tiny images: reflect padding cannot exceed the side
        k = k[radius - pad : radius + pad + 1]
        k = k / k.sum()
    y = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return x - y


def untrained_image(real: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
    """The image of an untrained family: ``real`` + the high-pass of ``decoded`` at RMS
    :data:`RESIDUAL_RMS` per image, clamped to [-1, 1]."""
    r = highpass(decoded)
    rms = r.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-8)
    return (real + r * (RESIDUAL_RMS / rms)).clamp(-1, 1)


def _state_sha256(model: nn.Module) -> str:
    from deepfake_lab.export import weights_sha256

    return weights_sha256(model.state_dict())


def _as_float(images: torch.Tensor) -> torch.Tensor:
    return images.to(torch.float32).div(127.5).sub(1.0)


def _train(
    model: ZooAutoencoder,
    reals: torch.Tensor,
    steps: int,
    batch: int,
    lr: float,
    gen: torch.Generator,
    device: torch.device,
    report: Callable[[int], None],
) -> tuple[float, float]:
    """L1 reconstruction on random stride-aligned crops; (first, mean of last 10 %) loss."""
    n, size = reals.shape[0], reals.shape[-1]
    crop = min(size, TRAIN_CROP)
    cells = (size - crop) // 2**STAGES + 1  # crop corners on the 16 px grid
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.99))
    model.train()
    losses: list[float] = []
    for step in range(steps):
        idx = torch.randint(n, (batch,), generator=gen)
        corner = torch.randint(cells, (batch, 2), generator=gen) * 2**STAGES
        x = torch.stack(
            [
                reals[i, :, y : y + crop, x0 : x0 + crop]
                for i, (y, x0) in zip(idx.tolist(), corner.tolist(), strict=True)
            ]
        )
        x = _as_float(x).to(device)
        loss = (model(x) - x).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"zoo training diverged (loss {loss.item()}) at step {step}")
        losses.append(loss.item())
        report(step + 1)
    tail = losses[-max(1, steps // 10) :]
    return losses[0], float(np.mean(tail))


@torch.no_grad()
def _set_bn_statistics(
    model: nn.Module, reals: torch.Tensor, batch: int, device: torch.device
) -> None:
    """BatchNorm running statistics = the plain average over the reals (weights untouched)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    model.train()
    for start in range(0, reals.shape[0], batch):
        model(_as_float(reals[start : start + batch]).to(device))
    model.eval()


def _load_reals(
    real: Path, size: int, num: int | None, progress: Progress | None
) -> tuple[torch.Tensor, list[dict[str, Any]], list[dict[str, str]]]:
    paths = list_images(real)
    if not paths:
        raise UserError(
            f"no images found in {real} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    arrays: list[np.ndarray] = []
    records: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    want = len(paths) if num is None else min(num, len(paths))
    for p in paths:
        if len(arrays) >= want:
            break
        try:
            arrays.append(load_rgb(p, size))
        except DecodeError as e:
            skipped.append({"path": _rel(p, real), "reason": str(e)})
            continue
        records.append({"index": len(records), "path": _rel(p, real), "sha256": file_sha256(p)})
        if progress is not None:
            progress("reals", len(arrays), want)
    if not arrays:
        raise UserError(f"none of the {len(paths)} images in {real} could be decoded")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return images, records, skipped


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def _gan_folder(source: Path) -> str:
    """``gan-<run name>`` for a run folder, export folder or checkpoint file."""
    src = Path(source).resolve()
    if src.is_file():
        src = src.parents[1] if src.parent.name == "checkpoints" else src.with_suffix("")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", src.name).strip("-.") or "run"
    return f"gan-{name}"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _complete(out: Path, record: dict[str, Any] | None, files: int) -> bool:
    if not record or record.get("count") != files:
        return False
    folder = out / record["folder"]
    return all((folder / f"{i:05d}.png").is_file() for i in range(files))


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
    from deepfake_lab.training.common import resolve_device

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
    if not real.is_dir():
        raise UserError(f"real folder not found: {real}")
    check_output_paths(folders={"--out": out})
    if out.resolve() == real.resolve() or real.resolve() in out.resolve().parents:
        raise UserError(f"--out {out} is inside --real {real}; choose a folder outside it")
    previous = _previous_zoo(out)
    dev = resolve_device(device)

    from deepfake_lab.export import load_generator

    gan_models: dict[str, tuple[Path, Any]] = {}
    for g in gans:
        folder = _gan_folder(Path(g))
        if folder in gan_models:
            raise UserError(
                f"two --gan runs would both write {folder}/; export one under another name"
            )
        gan_models[folder] = (Path(g), load_generator(g, device=dev))

    reals, real_records, skipped = _load_reals(real, size, num, progress)
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
        if _complete(out, record["families"].get(name), n):
            say(f"{name}: already complete, skipped")
            continue
        record["families"][name] = _build_family(
            name, out, reals, real_records, params, dev, progress
        )
        _finish(out, record)
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
        if same and _complete(out, old, n):
            say(f"{folder}: already complete, skipped")
            continue
        record["gans"][folder] = _sample_gan(
            folder, source, loaded, out, n, size, seed, dev, progress
        )
        _finish(out, record)
        say(f"{folder}: {n} samples in {record['gans'][folder]['seconds']:.1f} s")
    if preview:
        _write_preview(out, reals, record)
        record["preview"] = PREVIEW
    _finish(out, record)
    return record


def _previous_zoo(out: Path) -> dict[str, Any] | None:
    """The zoo.json of ``out``, None for a new or empty folder; UserError for anything else."""
    import json

    if not out.exists() or not any(out.iterdir()):
        return None
    try:
        data = json.loads((out / ZOO_JSON).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(
            f"{out} is not empty and holds no {ZOO_JSON}; choose a new or empty --out"
        ) from None
    except (OSError, ValueError) as e:
        raise UserError(f"{out / ZOO_JSON} is unreadable ({e}); choose a new --out") from None
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
        raise UserError(f"{out / ZOO_JSON} is not a zoo record; choose a new --out")
    return data


def _build_family(
    name: str,
    out: Path,
    reals: torch.Tensor,
    real_records: list[dict[str, Any]],
    params: dict[str, Any],
    dev: torch.device,
    progress: Progress | None,
) -> dict[str, Any]:
    upsampler, norm, trained = parse_family(name)
    t0 = time.perf_counter()
    fseed = family_seed(params["seed"], name)
    gen = torch.Generator().manual_seed(fseed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(fseed)  # nn.Module init draws from the global generator
        model = ZooAutoencoder(params["size"], upsampler, norm).to(dev)
    n, batch, steps = reals.shape[0], params["batch"], params["steps"]
    total = (steps if trained else 0) + n

    def report(done: int) -> None:
        if progress is not None:
            progress(name, done, total)

    loss_first = loss_last = None
    if trained:
        loss_first, loss_last = _train(model, reals, steps, batch, params["lr"], gen, dev, report)
    else:
        _set_bn_statistics(model, reals, batch, dev)
    model.eval()
    weights = _state_sha256(model)
    marker = Marker(f"zoo:{name}", weights, DETECTOR_DATA)
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    recon_err, image_err, psnrs = [], [], []
    with torch.no_grad():
        for start in range(0, n, batch):
            x = _as_float(reals[start : start + batch]).to(dev)
            decoded = model(x)
            image = decoded if trained else untrained_image(x, decoded)
            recon_err.append((decoded - x).abs().mean(dim=(1, 2, 3)).cpu())
            image_err.append((image - x).abs().mean(dim=(1, 2, 3)).cpu())
            pixels = to_uint8(image.cpu())
            for j, img in enumerate(pixels):
                i = start + j
                psnrs.append(_psnr(img, reals[i].permute(1, 2, 0).numpy()))
                marker.write(
                    folder / f"{i:05d}.png",
                    img,
                    seed=fseed,
                    zoo_family=name,
                    real_index=i,
                    real_sha256=real_records[i]["sha256"],
                )
            report((steps if trained else 0) + min(start + batch, n))
    return {
        "folder": name,
        "count": n,
        "upsampler": upsampler,
        "norm": norm,
        "trained": trained,
        "architecture": describe(params["size"], upsampler, norm),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seed": fseed,
        "steps": steps if trained else 0,
        "weights_sha256": weights,
        "loss_first": loss_first,
        "loss_last": loss_last,
        # Mean |decoder output - real| in [-1, 1] units: the autoencoder itself (for an
        # untrained family, the random decoder, before it is used as a residual).
        "recon_l1": float(torch.cat(recon_err).mean()),
        # Mean |written image - real| and the PSNR of the written images (uint8).
        "image_l1": float(torch.cat(image_err).mean()),
        "psnr_db": float(np.mean([p for p in psnrs if math.isfinite(p)] or [float("inf")])),
        "seconds": round(time.perf_counter() - t0, 2),
        "provenance": marker.summary(),
    }


def _sample_gan(
    folder: str,
    source: Path,
    loaded: Any,
    out: Path,
    n: int,
    size: int,
    seed: int,
    dev: torch.device,
    progress: Progress | None,
) -> dict[str, Any]:
    from PIL import Image

    from deepfake_lab.generate import latents_for_seeds

    t0 = time.perf_counter()
    G = loaded.model.eval()
    marker = Marker(
        f"{loaded.identity['arch']}:{folder[4:]}", loaded.identity["weights_sha256"], DETECTOR_DATA
    )
    (out / folder).mkdir(parents=True, exist_ok=True)
    native = None
    seeds = [seed + i for i in range(n)]
    with torch.no_grad():
        for start in range(0, n, 64):
            chunk = seeds[start : start + 64]
            images = to_uint8(
                G(latents_for_seeds(chunk, G.z_dim).to(dev)).float().clamp(-1, 1).cpu()
            )
            native = int(images.shape[1])
            for i, (s, img) in enumerate(zip(chunk, images, strict=True)):
                if native != size:
                    img = np.asarray(Image.fromarray(img).resize((size, size), Image.LANCZOS))
                marker.write(out / folder / f"{start + i:05d}.png", img, seed=s, zoo_family=folder)
            if progress is not None:
                progress(folder, min(start + 64, n), n)
    how = (
        "none"
        if native == size
        else (
            f"{'upscaled' if native < size else 'downscaled'} from its native {native} px to "
            f"{size} px with Lanczos (PIL); a detector can learn the resize itself, so give the "
            "reals a resampling history too (the detector's resampling augmentation)"
        )
    )
    return {
        "folder": folder,
        "count": n,
        "source": str(source),
        "model": loaded.identity,
        "seeds": [seeds[0], seeds[-1]],
        "native_size": native,
        "size": size,
        "resized": how,
        "seconds": round(time.perf_counter() - t0, 2),
        "provenance": marker.summary(),
    }


def _finish(out: Path, record: dict[str, Any]) -> None:
    """Write manifest.jsonl (every finished family and GAN) and zoo.json, atomically."""
    import json

    shas = [r["sha256"] for r in record["reals"]["files"]]
    lines = []
    for section in ("families", "gans"):
        for name, fam in record[section].items():
            for i in range(fam["count"]):
                row = {"path": f"{fam['folder']}/{i:05d}.png", "label": "fake", "source": name}
                if section == "families" and i < len(shas):
                    row["group"] = f"real:{shas[i][:16]}"
                lines.append(json.dumps(row))
    atomic_write_text(out / MANIFEST, "".join(line + "\n" for line in lines))
    atomic_write_json(out / ZOO_JSON, record)


def _write_preview(out: Path, reals: torch.Tensor, record: dict[str, Any]) -> None:
    """``preview.png``: the first reals, then the same faces from each family, one row
    each, labelled; tagged AI-generated like the images, not watermarked."""
    from PIL import Image, ImageDraw

    from deepfake_lab.data.decode import decode_image

    cols = min(PREVIEW_COLUMNS, reals.shape[0])
    size = reals.shape[-1]
    rows: list[tuple[str, list[np.ndarray]]] = [
        ("real", [reals[i].permute(1, 2, 0).numpy() for i in range(cols)])
    ]
    for section in ("families", "gans"):
        for name, fam in sorted(record[section].items()):
            cells = []
            for i in range(min(cols, fam["count"])):
                try:
                    cells.append(decode_image(out / fam["folder"] / f"{i:05d}.png").pixels)
                except (DecodeError, OSError):
                    cells.append(np.zeros((size, size, 3), np.uint8))
            rows.append((name, cells))
    label_w, pad = 150, 2
    canvas = Image.new("RGB", (label_w + cols * (size + pad) + pad, len(rows) * (size + pad) + pad))
    draw = ImageDraw.Draw(canvas)
    for r, (name, cells) in enumerate(rows):
        y = pad + r * (size + pad)
        draw.text((4, y + max(0, size // 2 - 6)), name, fill=(255, 255, 255))
        for c, cell in enumerate(cells):
            if cell.shape[:2] != (size, size):
                cell = np.asarray(Image.fromarray(cell).resize((size, size)))
            canvas.paste(
                Image.fromarray(np.ascontiguousarray(cell[..., :3])),
                (label_w + pad + c * (size + pad), y),
            )
    digest = hashlib.sha256(
        "".join(f["weights_sha256"] for f in record["families"].values()).encode()
    ).hexdigest()
    Marker("zoo:preview", digest, DETECTOR_DATA).write(
        out / PREVIEW, np.asarray(canvas), rows=len(rows)
    )
