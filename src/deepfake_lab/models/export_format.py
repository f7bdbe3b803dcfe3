"""The export format shared by generators and detectors: a folder with ``model.safetensors``
(the weights) and ``config.json`` (format, registry name, constructor arguments, fingerprint,
provenance; for detectors also the calibration and input handling).

Reading never unpickles anything, so exports from strangers are safe to open. Before
anything is allocated, ``config.json`` is checked against sane bounds (:data:`MAX_SIDE`,
:data:`MAX_INT`, ...; a ``size`` of 300000 would otherwise ask for hundreds of GB) and the
architecture it names, built on PyTorch's ``meta`` device (no memory), against the tensor
shapes in the safetensors header; only then are the weights read and checked against the
fingerprint in ``config.json``. Writing goes through a temp folder renamed into place, so an
export folder always holds a matching set.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from deepfake_lab.errors import UserError
from deepfake_lab.hashing import weights_sha256
from deepfake_lab.io import atomic_write, atomic_write_json, usual_permissions
from deepfake_lab.registry import Registry
from deepfake_lab.safe_text import file_stem

EXPORT_FORMAT = "deepfake-lab/generator"
DETECTOR_FORMAT = "deepfake-lab/detector"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
KIND_OF_FORMAT = {EXPORT_FORMAT: "generator", DETECTOR_FORMAT: "detector"}

# Bounds on what model files may ask for, checked before anything is built. Far above any
# model of this package, far below what would exhaust a machine's memory.
#: Largest image side (``size``) in px: the largest crops ``data prepare`` makes.
MAX_SIDE = 4096
#: Largest magnitude of any other whole number in the constructor arguments (widths, z_dim).
MAX_INT = 1 << 16
#: Most items in a list or mapping of constructor arguments (e.g. a fusion's members).
MAX_ITEMS = 256
#: Deepest nesting of constructor arguments.
MAX_DEPTH = 8
#: Longest string in the constructor arguments.
MAX_TEXT = 4096
#: Largest ``config.json`` read.
MAX_CONFIG_BYTES = 1 << 20


def is_export_folder(src: Path) -> bool:
    """Whether ``src`` holds ``config.json`` + ``model.safetensors``."""
    return (src / CONFIG_FILE).is_file() and (src / WEIGHTS_FILE).is_file()


def read_meta(src: Path) -> dict[str, Any]:
    """``config.json`` of an export folder ({} when it is not a JSON object).

    Raises:
        UserError: the file is larger than :data:`MAX_CONFIG_BYTES` or not JSON.
    """
    path = src / CONFIG_FILE
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(f"{path} is over {MAX_CONFIG_BYTES >> 20} MB; not an export's config")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from None
    return meta if isinstance(meta, dict) else {}


def check_arguments(registry: Registry[Any], name: Any, kwargs: Any, where: str) -> None:
    """Refuse constructor arguments from a file before anything is built: an unknown
    architecture, values out of bounds (:data:`MAX_SIDE` for ``size``, :data:`MAX_INT`,
    :data:`MAX_ITEMS`, :data:`MAX_DEPTH`, :data:`MAX_TEXT`), and arguments that would make
    the constructor read a file or download one (a detector's ``load_only_kwargs``; model
    files carry their weights).

    Raises:
        UserError: one line naming the file (``where``), the argument and the bound.
    """
    kind = registry.kind
    if not isinstance(name, str) or name not in registry:
        raise UserError(
            f"unknown {kind} architecture {name!r} in {where}; "
            f"this version knows: {', '.join(registry.names())}"
        )
    if not isinstance(kwargs, dict):
        raise UserError(f"{where} gives {kwargs!r} as constructor arguments; expected a mapping")
    _check_value(kwargs, "kwargs", where, 0)
    _check_no_file_arguments(registry, name, kwargs, where)


def _check_value(value: Any, at: str, where: str, depth: int) -> None:
    def refuse(what: str) -> UserError:
        return UserError(f"{where}: {at} {what}; refusing to build the model")

    if depth > MAX_DEPTH:
        raise refuse(f"is nested more than {MAX_DEPTH} deep")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if at.rpartition(".")[2] == "size" and not 1 <= value <= MAX_SIDE:
            raise refuse(f"= {value} px is outside 1-{MAX_SIDE}")
        if abs(value) > MAX_INT:
            raise refuse(f"= {value} is larger than {MAX_INT}")
    elif isinstance(value, float):
        if math.isnan(value):
            raise refuse("is NaN")
        if at.rpartition(".")[2] == "size":
            raise refuse(f"= {value} is not a whole number of px")
    elif isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise refuse(f"is a string of {len(value)} characters (at most {MAX_TEXT})")
    elif isinstance(value, list | dict):
        if len(value) > MAX_ITEMS:
            raise refuse(f"has {len(value)} items (at most {MAX_ITEMS})")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            _check_value(item, f"{at}.{key}", where, depth + 1)
    else:
        raise refuse(f"is a {type(value).__name__}, not a JSON value")


def _check_no_file_arguments(
    registry: Registry[Any], name: str, kwargs: Mapping[str, Any], where: str
) -> None:
    # A detector's load-only arguments (released weights, a pretrained path) read or
    # download files when the model is built: never at the say-so of a model file. Fusion
    # members are detectors too, given as {"name": ..., "kwargs": {...}}.
    cls = registry.get(name)
    for key in getattr(cls, "load_only_kwargs", ()):
        if kwargs.get(key) is not None:
            raise UserError(
                f"{where}: kwargs.{key} = {kwargs[key]!r} would load a file when the model is "
                "built; model files carry their weights (re-export the model)"
            )
    for i, member in enumerate(kwargs.get("members") or ()):
        if isinstance(member, dict) and isinstance(member.get("kwargs"), dict):
            sub = member.get("name")
            if isinstance(sub, str) and sub in registry:
                _check_no_file_arguments(registry, sub, member["kwargs"], f"{where} member {i}")


def weights_header(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors file's header, without reading the tensors.

    Raises:
        UserError: the file is not a readable safetensors file.
    """
    try:
        with safe_open(str(path), framework="pt") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error type for damaged files
        raise UserError(f"{path} cannot be read ({exc}); re-export it") from None


def check_shapes(
    registry: Registry[Any],
    name: str,
    kwargs: dict[str, Any],
    shapes: Mapping[str, tuple[int, ...]],
    where: str,
) -> None:
    """Build ``name(**kwargs)`` on the ``meta`` device (no memory) and compare its state
    dict's names and shapes with ``shapes`` (the weights' header), so that arguments that do
    not fit the weights are refused before anything is allocated.

    Architectures that cannot be built on ``meta`` (data-dependent checks in the
    constructor) are skipped here; :func:`check_arguments` bounds them.

    Raises:
        UserError: arguments the architecture refuses, or a name or shape that differs.
    """
    try:
        with torch.device("meta"):
            model = registry.build(name, **kwargs)
    except (UserError, TypeError, ValueError) as exc:
        raise UserError(
            f"{where} gives arguments a {name} {registry.kind} does not take: {exc}"
        ) from None
    except Exception:  # e.g. NotImplementedError: an operator without a meta kernel
        return
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(expected.keys() - shapes.keys())
    unexpected = sorted(shapes.keys() - expected.keys())
    wrong = [k for k in expected if k in shapes and expected[k] != tuple(shapes[k])]
    if missing or unexpected or wrong:
        if wrong:
            k = wrong[0]
            detail = f"{k} is {tuple(shapes[k])} in the weights, {expected[k]} in the model"
        elif missing:
            detail = f"the weights lack {missing[0]}" + (
                f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            )
        else:
            detail = f"the weights hold {unexpected[0]}, which the model does not have"
        raise UserError(
            f"weights do not fit a {name} {registry.kind} with {kwargs} ({where}): {detail}"
        )


def load_export(
    src: Path, fmt: str, required: tuple[str, ...], registry: Registry[Any], name_key: str
) -> tuple[dict[str, Any], torch.nn.Module]:
    """``config.json`` and the model it describes, every defect a one-line UserError.

    In order, so that a crafted export is refused before anything is allocated: the format
    and required keys; the bounds of :func:`check_arguments` (and ``size``,
    ``weights_bytes``); the safetensors header against the architecture
    (:func:`check_shapes`); then the weights, checked against the fingerprint.

    Args:
        src: the export folder.
        fmt: ``EXPORT_FORMAT`` or ``DETECTOR_FORMAT``.
        required: keys ``config.json`` must have.
        registry: where ``meta[name_key]`` is looked up.
        name_key: the key naming the architecture (``arch`` or ``name``).

    Returns:
        ``(meta, model)``: the model in eval mode without grads, on the CPU.
    """
    meta = read_meta(src)
    what = KIND_OF_FORMAT[fmt]
    where = f"{src}/{CONFIG_FILE}"
    if meta.get("format") != fmt:
        other = KIND_OF_FORMAT.get(str(meta.get("format")))
        hint = f" (it is a {other} export)" if other else ""
        raise UserError(f"{where} is not a deepfake-lab {what} export{hint}")
    missing = [k for k in required if k not in meta]
    if missing:
        raise UserError(f"{where} lacks {', '.join(missing)}; re-export the model")
    name, kwargs = meta[name_key], meta["kwargs"]
    check_arguments(registry, name, kwargs, where)
    if "size" in meta:
        _check_value(meta["size"], "size", where, 0)
        if isinstance(kwargs.get("size"), int) and meta["size"] != kwargs["size"]:
            raise UserError(f"{where}: size {meta['size']!r} differs from kwargs.size")
    weights = src / WEIGHTS_FILE
    header = weights_header(weights)  # reads the header only: a damaged file fails here
    nbytes = meta.get("weights_bytes")
    if nbytes is not None and nbytes != weights.stat().st_size:
        raise UserError(
            f"{weights} is {weights.stat().st_size} bytes, {CONFIG_FILE} says {nbytes!r}; "
            "the files were changed or mixed up"
        )
    check_shapes(registry, name, kwargs, header, where)
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error type for damaged files
        raise UserError(f"{weights} cannot be read ({exc}); re-export it") from None
    digest = weights_sha256(state)
    if digest != meta["weights_sha256"]:
        raise UserError(
            f"{weights} does not match the fingerprint in {CONFIG_FILE} "
            f"({digest[:12]} != {str(meta['weights_sha256'])[:12]}); the files were changed "
            "or mixed up"
        )
    return meta, _build(registry, name, kwargs, state, where)


def build_model(
    registry: Registry[Any],
    name: str,
    kwargs: Any,
    state: dict[str, torch.Tensor],
    where: str = "the model files",
) -> torch.nn.Module:
    """``registry.build(name, **kwargs)`` with ``state`` loaded, in eval mode without grads.

    The arguments are checked first (:func:`check_arguments`, then :func:`check_shapes`
    against ``state``), so that a checkpoint from elsewhere cannot make the constructor
    allocate more than its weights.
    """
    check_arguments(registry, name, kwargs, where)
    check_shapes(registry, name, kwargs, {k: tuple(v.shape) for k, v in state.items()}, where)
    return _build(registry, name, kwargs, state, where)


def _build(
    registry: Registry[Any], name: str, kwargs: dict[str, Any], state: Any, where: str
) -> torch.nn.Module:
    kind = registry.kind
    try:
        model = registry.build(name, **kwargs)
    except TypeError as exc:
        raise UserError(f"{where} gives arguments a {name} {kind} does not take: {exc}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(
            f"weights do not fit a {name} {kind} with {kwargs}: {str(exc).splitlines()[0]}"
        ) from None
    return model.eval().requires_grad_(False)


def check_export_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty; choose a new export folder")


def write_export(
    out: Path,
    state: dict[str, torch.Tensor],
    meta: dict[str, Any],
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write the weights, ``config.json`` and ``extra(folder)``'s files as one set.

    ``extra`` runs first (it may add files and fill in ``meta``); any failure leaves no
    folder behind, and ``out`` appears only complete.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{file_stem(out.name, reserve=14)}.", dir=out.parent))
    try:
        usual_permissions(tmp)
        if extra is not None:
            extra(tmp)
        blob = save(state, metadata={"format": meta["format"]})
        meta["weights_bytes"] = len(blob)
        atomic_write(tmp / WEIGHTS_FILE, lambda fh: fh.write(blob))
        atomic_write_json(tmp / CONFIG_FILE, meta)
        if out.exists():
            out.rmdir()  # empty, checked by the caller
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
