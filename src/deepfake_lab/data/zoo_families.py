"""Zoo families and GAN samples: naming, seeding, building one family, sampling one GAN.

The family recipe (the trained families' L1 reconstruction training, the untrained families'
high-passed residual) and the per-family constants live here; :mod:`deepfake_lab.data.zoo`
(:func:`~deepfake_lab.data.zoo.build_zoo`) calls :func:`build_family` and :func:`sample_gan`
for each family and GAN it builds.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepfake_lab.errors import UserError
from deepfake_lab.models.zoo import NORMS, STAGES, UPSAMPLERS, ZooAutoencoder, describe
from deepfake_lab.pixels import to_uint8
from deepfake_lab.provenance.marking import DETECTOR_DATA, Marker

TRAINING_MODES = ("trained", "untrained")
#: RMS of the added residual of untrained families, in [-1, 1] units (about 37 dB PSNR).
RESIDUAL_RMS = 0.03
#: Sigma (px) of the Gaussian whose blur is subtracted from an untrained decoder's output.
HIGHPASS_SIGMA = 2.0
#: Side of the random crops that trained families learn from (full images when smaller).
TRAIN_CROP = 64

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
    from deepfake_lab.hashing import weights_sha256

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


def gan_folder(source: Path) -> str:
    """``gan-<run name>`` for a run folder, export folder or checkpoint file."""
    src = Path(source).resolve()
    if src.is_file():
        src = src.parents[1] if src.parent.name == "checkpoints" else src.with_suffix("")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", src.name).strip("-.") or "run"
    return f"gan-{name}"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def build_family(
    name: str,
    out: Path,
    reals: torch.Tensor,
    real_records: list[dict[str, Any]],
    params: dict[str, Any],
    dev: torch.device,
    progress: Progress | None,
) -> dict[str, Any]:
    """Build family ``name`` into ``out/<name>/`` (one image per real); its zoo.json entry."""
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


def sample_gan(
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
    """Write ``n`` samples of a loaded generator (seeds ``seed ... seed + n - 1``) into
    ``out/<folder>/`` at ``size`` px; its zoo.json entry."""
    from PIL import Image

    from deepfake_lab.models.latents import latents_for_seeds

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
