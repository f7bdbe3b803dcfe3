"""Inputs for the sharded, streamed and resumed scans: a tiny untrained detector export
(random weights: its scores differ from file to file, which is all these tests need) and a
folder of small procedural faces."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from deepfake_lab.data.procedural import render_faces


def export_toy_detector(folder: Path, seed: int = 0, size: int = 16) -> Path:
    """An ``npr`` export (``model.safetensors`` + ``config.json``) with seeded random weights;
    another ``seed`` is another model (another ``model_id``)."""
    import torch
    from safetensors.torch import save_file

    from deepfake_lab.hashing import weights_sha256
    from deepfake_lab.models.detectors import DETECTORS
    from deepfake_lab.models.export_format import DETECTOR_FORMAT

    torch.manual_seed(seed)
    kwargs = {"size": size, "width": 8}
    model = DETECTORS.build("npr", **kwargs)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    folder.mkdir(parents=True)
    save_file(state, str(folder / "model.safetensors"))
    meta = {"format": DETECTOR_FORMAT, "name": "npr", "kwargs": kwargs}
    meta["weights_sha256"] = weights_sha256(state)
    (folder / "config.json").write_text(json.dumps(meta))
    return folder


def write_faces(folder: Path, n: int, size: int = 24, seed: int = 0) -> list[Path]:
    """``n`` procedural face PNGs in ``folder`` and a subfolder of it (every other one)."""
    paths = []
    for i, face in enumerate(render_faces(n, size, seed=seed)):
        p = folder / ("sub" if i % 2 else "") / f"{i:03d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).save(p)
        paths.append(p)
    return paths
