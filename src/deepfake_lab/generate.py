"""Sampling images from a trained generator: ``deepfake-lab generate``.

Image ``i`` is drawn from its own seed ``seed + i``, so any single image can be reproduced on
its own, and a larger ``--num`` extends a smaller one with the same first images.

Every image (and the grid) is written through ``provenance.Marker``: invisible watermark,
AI-generated metadata, and a C2PA manifest when signing is configured.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import torch

from deepfake_lab import __version__
from deepfake_lab.devices import resolve_device
from deepfake_lab.errors import UserError
from deepfake_lab.io import atomic_write_json
from deepfake_lab.models.generators.loading import load_generator
from deepfake_lab.models.latents import latents_for_seeds
from deepfake_lab.pixels import to_uint8
from deepfake_lab.provenance.marking import NOT_SIGNED_NOTE, Marker, ProvenanceOptions
from deepfake_lab.provenance.watermark import MIN_SIDE
from deepfake_lab.report.grid import make_grid


def new_output_folder(out: str | Path) -> Path:
    """``out`` as a Path, refused when it exists and is not an empty folder (outputs never
    mix with, or overwrite, an earlier run's)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty; choose a new output folder")
    return out


def marker_for(
    loaded: Any, source: str | Path, provenance: ProvenanceOptions, log: Any = None
) -> Marker:
    """The ``Marker`` of a loaded generator's outputs (named ``arch:folder``), noting through
    ``log`` when they will not be signed."""
    name = f"{loaded.identity['arch']}:{Path(source).resolve().name}"
    marker = Marker(name, loaded.identity["weights_sha256"], provenance)
    if marker.signer is None and log is not None:
        log(NOT_SIGNED_NOTE)
    return marker


def generate_images(
    source: str | Path,
    num: int,
    out: str | Path,
    seed: int = 0,
    truncation: float = 1.0,
    grid: bool = False,
    batch: int = 64,
    device: str = "auto",
    provenance: ProvenanceOptions | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Write ``num`` PNG images and ``generate.json`` to ``out``.

    Args:
        source: run folder, checkpoint or export folder.
        num: how many images (>= 1).
        out: output folder; must be new or empty, so nothing is overwritten.
        seed: seed of the first image; image i uses ``seed + i``.
        truncation: psi in [0, 1].
        grid: also write ``grid.png`` of all images.
        batch: images per forward pass.
        device: auto | cpu | cuda.
        provenance: watermark / secret / signing options (default: watermark and tags on,
            no signature).
        log: called once with a note about signing (e.g. ``print``), or None.

    Returns:
        The manifest written to ``out/generate.json``.
    """
    if num < 1:
        raise UserError("--num must be at least 1")
    if batch < 1:
        raise UserError("--batch must be at least 1")
    if not 0.0 <= truncation <= 1.0:
        raise UserError(f"--truncation must be in [0, 1], got {truncation}")
    out = new_output_folder(out)
    provenance = provenance or ProvenanceOptions()
    provenance.validate()  # before the model loads or the folder exists
    dev = resolve_device(device)
    loaded = load_generator(source, device=dev)
    G = loaded.model
    marker = marker_for(loaded, source, provenance, log)
    seeds = [seed + i for i in range(num)]
    out.mkdir(parents=True, exist_ok=True)
    records, all_images = [], []
    with torch.no_grad():
        for start in range(0, num, batch):
            chunk = seeds[start : start + batch]
            z = latents_for_seeds(chunk, G.z_dim).to(dev)
            images = G.sample(z, truncation).float().clamp(-1, 1).cpu()
            if grid:
                all_images.append(images)
            for s, img in zip(chunk, to_uint8(images), strict=True):
                file = f"seed{s:08d}.png"
                marker.write(out / file, img, seed=s, truncation=truncation)
                records.append({"file": file, "seed": s})
    if marker.too_small and log is not None:
        log(
            f"{marker.too_small} images under {MIN_SIDE} px were tagged but not watermarked "
            "(too small to carry the mark)"
        )
    manifest = {
        "tool": "deepfake-lab",
        "version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model": loaded.identity,
        "truncation": truncation,
        "num": num,
        "provenance": marker.summary(),
        "images": records,
    }
    if grid:
        marker.write(out / "grid.png", make_grid(torch.cat(all_images)), grid_of=num)
        manifest["grid"] = "grid.png"
    atomic_write_json(out / "generate.json", manifest)
    return manifest


def style_mix_grid(
    source: str | Path,
    seeds: tuple[int, int],
    out: str | Path,
    truncation: float = 1.0,
    device: str = "auto",
    provenance: ProvenanceOptions | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """One row mixing two seeds' styles (generators with a mapping network: ``stylegan2``):
    cell k takes its coarse styles (layers before k) from seed A and the rest from seed B,
    from all-B (k = 0) to all-A (k = the number of style inputs).

    Writes ``style-mix.png`` (marked like every generated image) and ``style-mix.json``.

    Raises:
        UserError: a generator without styles, a bad truncation, a non-empty folder.
    """
    if not 0.0 <= truncation <= 1.0:
        raise UserError(f"--truncation must be in [0, 1], got {truncation}")
    out = new_output_folder(out)
    provenance = provenance or ProvenanceOptions()
    provenance.validate()
    loaded = load_generator(source, device=resolve_device(device))
    G = loaded.model
    if not hasattr(G, "style_mix"):
        raise UserError(
            f"--style-mix needs a generator with a mapping network (stylegan2); "
            f"{source} is {loaded.identity['arch']}"
        )
    marker = marker_for(loaded, source, provenance, log)
    dev = next(G.parameters()).device
    za, zb = (latents_for_seeds([s], G.z_dim).to(dev) for s in seeds)
    with torch.no_grad():
        cells = [G.style_mix(za, zb, k, truncation) for k in range(G.num_ws + 1)]
    out.mkdir(parents=True, exist_ok=True)
    grid = make_grid(torch.cat(cells).float().clamp(-1, 1).cpu(), nrow=len(cells))
    marker.write(out / "style-mix.png", grid, seed=seeds[0], style_mix_with=seeds[1])
    manifest = {
        "tool": "deepfake-lab",
        "version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model": loaded.identity,
        "seeds": list(seeds),
        "truncation": truncation,
        "crossovers": list(range(G.num_ws + 1)),
        "provenance": marker.summary(),
        "grid": "style-mix.png",
    }
    atomic_write_json(out / "style-mix.json", manifest)
    return manifest
