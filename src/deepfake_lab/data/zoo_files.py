"""The zoo's files besides its images: the reals read in, ``zoo.json``, ``manifest.jsonl``
and ``preview.png``.

:mod:`deepfake_lab.data.zoo` (:func:`~deepfake_lab.data.zoo.build_zoo`) reads the reals with
:func:`load_reals`, checks an existing output folder with :func:`previous_zoo` and
:func:`is_complete`, and records progress with :func:`write_records` and
:func:`write_preview`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_lab.data.dataset import list_images, load_rgb
from deepfake_lab.data.decode import IMAGE_SUFFIXES, DecodeError
from deepfake_lab.data.zoo_families import Progress
from deepfake_lab.errors import UserError
from deepfake_lab.hashing import sha256_file
from deepfake_lab.io import atomic_write_json, atomic_write_text
from deepfake_lab.provenance.marking import DETECTOR_DATA, Marker

PREVIEW_COLUMNS = 8
ZOO_JSON, MANIFEST, PREVIEW = "zoo.json", "manifest.jsonl", "preview.png"


def load_reals(
    real: Path, size: int, num: int | None, progress: Progress | None
) -> tuple[torch.Tensor, list[dict[str, Any]], list[dict[str, str]]]:
    """The first ``num`` decodable reals at ``size`` (uint8, NCHW), their records (index,
    path, sha256) and the skipped files (path, reason)."""
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
        records.append({"index": len(records), "path": _rel(p, real), "sha256": sha256_file(p)})
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


def is_complete(out: Path, record: dict[str, Any] | None, files: int) -> bool:
    """Whether ``record`` (a family or GAN entry of zoo.json) has all ``files`` images."""
    if not record or record.get("count") != files:
        return False
    folder = out / record["folder"]
    return all((folder / f"{i:05d}.png").is_file() for i in range(files))


def previous_zoo(out: Path) -> dict[str, Any] | None:
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


def write_records(out: Path, record: dict[str, Any]) -> None:
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


def write_preview(out: Path, reals: torch.Tensor, record: dict[str, Any]) -> None:
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
