"""A tiny generator export whose frames carry the watermark through video encoding, for
``generate --video`` and ``verify`` tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from deepfake_lab.hashing import weights_sha256
from tiny_configs import tiny_generator_export


def textured_generator_export(folder: Path, size: int = 16) -> Path:
    """A ``size`` px generator export at ``folder`` with large random weights: its images
    have contrast (an initialised DCGAN draws flat grey, too flat to carry the watermark
    through encoding)."""
    out = tiny_generator_export(folder, size=size)
    state = load_file(str(out / "model.safetensors"))
    g = torch.Generator().manual_seed(1)
    for k, v in state.items():
        if v.ndim == 4:
            state[k] = torch.randn(v.shape, generator=g) * 0.2
    save_file(state, str(out / "model.safetensors"))
    meta = json.loads((out / "config.json").read_text())
    meta["weights_sha256"] = weights_sha256(state)
    (out / "config.json").write_text(json.dumps(meta))
    return out
