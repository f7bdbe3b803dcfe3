"""Encoding and decoding images with an autoencoder generator: ``deepfake-lab reconstruct``.

Each image is decoded, centre-cropped and resized to the model's size (as training data
are), encoded to its posterior mean and decoded. Reconstructions are generated images: each
is written through ``provenance.Marker`` (invisible watermark, AI-generated metadata, C2PA
when signing is configured), like every output of ``generate``. ``grid.png`` shows each
input beside its reconstruction; ``reconstruct.json`` gives the per-image error.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_lab import __version__
from deepfake_lab.data.dataset import load_rgb
from deepfake_lab.data.decode import DecodeError, list_image_paths
from deepfake_lab.devices import resolve_device
from deepfake_lab.errors import UserError
from deepfake_lab.generate import marker_for, new_output_folder
from deepfake_lab.io import atomic_write_json
from deepfake_lab.models.generators.loading import load_generator
from deepfake_lab.pixels import to_uint8
from deepfake_lab.provenance.marking import ProvenanceOptions
from deepfake_lab.report.grid import make_grid
from deepfake_lab.safe_text import file_stem, for_record


def reconstruct_images(
    source: str | Path,
    paths: list[str | Path],
    out: str | Path,
    batch: int = 64,
    device: str = "auto",
    provenance: ProvenanceOptions | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Reconstruct images with an autoencoder generator (``--arch vae``).

    Args:
        source: run folder, checkpoint or export of an autoencoder generator.
        paths: image files and folders (walked recursively).
        out: new or empty folder for the reconstructions, ``grid.png`` and
            ``reconstruct.json``.
        batch: images per forward pass.
        device: where to run.
        provenance: how outputs are marked (default: watermark and metadata).
        log: called with notes (unsigned output, skipped files).

    Returns:
        The manifest written to ``reconstruct.json``: model identity, and per image its
        ``source``, output ``file``, ``l1`` (mean absolute error on the 0-255 scale) and
        ``psnr_db``; unreadable files under ``skipped`` with the reason.

    Raises:
        UserError: not an autoencoder, no images, a non-empty output folder.
    """
    if batch < 1:
        raise UserError("--batch must be at least 1")
    out = new_output_folder(out)
    provenance = provenance or ProvenanceOptions()
    provenance.validate()
    files = list_image_paths(paths)
    dev = resolve_device(device)
    loaded = load_generator(source, device=dev)
    G = loaded.model
    if not hasattr(G, "reconstruct"):
        raise UserError(
            f"{source} is a {loaded.identity['arch']} generator, which has no encoder; "
            "reconstruct needs an autoencoder (train gan --arch vae)"
        )
    marker = marker_for(loaded, source, provenance, log)
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    pairs: list[np.ndarray] = []
    names: set[str] = set()
    for start in range(0, len(files), batch):
        inputs, kept = [], []
        for f in files[start : start + batch]:
            try:
                inputs.append(load_rgb(f, G.size))
                kept.append(f)
            except DecodeError as exc:
                skipped.append({"source": for_record(f), "reason": str(exc)})
        if not inputs:
            continue
        x = torch.from_numpy(np.stack(inputs)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        recon = to_uint8(G.reconstruct(x.to(dev)).float().clamp(-1, 1).cpu())
        for f, original, img in zip(kept, inputs, recon, strict=True):
            name = _unique(f"{file_stem(f.stem, reserve=10)}.recon.png", names)
            marker.write(out / name, img)
            err = np.abs(original.astype(np.float64) - img.astype(np.float64))
            mse = float(np.mean(err**2))
            psnr = math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
            records.append(
                {
                    "source": for_record(f),
                    "file": name,
                    "l1": round(float(err.mean()), 3),
                    "psnr_db": round(psnr, 2),
                }
            )
            pairs += [original, img]
    if not records:
        raise UserError(f"none of the {len(files)} images could be read; see their reasons")
    if skipped and log is not None:
        log(f"{len(skipped)} of {len(files)} images could not be read and were skipped")
    # Inputs and reconstructions side by side: an even number of columns, pairs in a row.
    marker.write(out / "grid.png", make_grid(np.stack(pairs), nrow=2 * min(4, len(records))))
    manifest = {
        "tool": "deepfake-lab",
        "version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model": loaded.identity,
        "size": G.size,
        "mean_l1": round(float(np.mean([r["l1"] for r in records])), 3),
        "provenance": marker.summary(),
        "images": records,
        "skipped": skipped,
        "grid": "grid.png",
    }
    atomic_write_json(out / "reconstruct.json", manifest)
    return manifest


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name`` with ``-2``, ``-3``, ... before its suffixes when taken."""
    stem, _, rest = name.partition(".")
    candidate, k = name, 1
    while candidate in taken:
        k += 1
        candidate = f"{stem}-{k}.{rest}"
    taken.add(candidate)
    return candidate
