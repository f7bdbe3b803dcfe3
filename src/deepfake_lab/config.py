"""Typed configuration: YAML files, ``--set a.b=v`` overrides, validation, dumping.

Every config is a pydantic model with ``extra="forbid"``, so an unknown key is an error that
names the key. Schemas live next to the code they configure (e.g. ``training.gan_config``);
this module holds the shared machinery.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from deepfake_lab.errors import UserError

C = TypeVar("C", bound="StrictModel")


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are rejected, assignments are validated.

    A schema that renamed keys lists them in ``renamed_keys`` (old dotted key -> new dotted
    key): the old key is still read, with a warning, so that old YAML files, ``--set`` flags
    and the configs stored in old checkpoints keep loading.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    renamed_keys: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _read_renamed_keys(cls, data: Any) -> Any:
        if cls.renamed_keys and isinstance(data, dict):
            return migrate_keys(data, cls.renamed_keys)
        return data


def migrate_keys(
    data: dict[str, Any], renamed: dict[str, str], warn: bool = True
) -> dict[str, Any]:
    """A copy of ``data`` with each old dotted key of ``renamed`` moved to its new key, with a
    ``FutureWarning`` for each key moved when ``warn`` is set.

    Raises:
        ValueError: both the old and the new key are set, to different values.
    """
    _missing = object()
    out = copy.deepcopy(data)
    for old, new in renamed.items():
        *old_parents, old_leaf = old.split(".")
        node: Any = out
        for part in old_parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or old_leaf not in node:
            continue
        value = node.pop(old_leaf)
        *new_parents, new_leaf = new.split(".")
        target = _section(out, new_parents)
        current = target.get(new_leaf, _missing)
        if current is not _missing and current != value:
            raise ValueError(f"{old!r} is the old name of {new!r}; set only {new!r}")
        target[new_leaf] = value
        if warn:
            warnings.warn(f"config key {old!r} is now {new!r}", FutureWarning, stacklevel=2)
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value`` into (["a", "b", "c"], value); the value is read as YAML.

    So ``--set train.batch=32`` gives an int, ``--set optim.betas=[0.0,0.99]`` a list and
    ``--set run.name=foo`` a string.
    """
    if "=" not in text:
        raise UserError(f"--set expects key=value, got {text!r} (example: --set train.batch=32)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"--set has an empty key in {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``a.b=v`` override applied (nested dicts created)."""
    out = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        try:
            _section(out, path[:-1])[path[-1]] = value
        except ValueError as exc:
            raise UserError(f"--set {text!r}: {exc}") from None
    return out


def _section(root: dict[str, Any], parents: list[str]) -> dict[str, Any]:
    """The nested section ``root[p0][p1]...``, created where missing.

    Raises:
        ValueError: one of ``parents`` holds a value, not a section.
    """
    node = root
    for part in parents:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ValueError(f"{part!r} is a value, not a section")
        node = child
    return node


def _renamed_override(text: str, renamed: dict[str, str]) -> str:
    """``--set data.size=32`` -> ``model.size=32`` when ``data.size`` was renamed."""
    key, sep, value = text.partition("=")
    for old, new in renamed.items():
        if key.strip() == old or key.strip().startswith(old + "."):
            warnings.warn(f"config key {old!r} is now {new!r}", FutureWarning, stacklevel=3)
            return new + key.strip()[len(old) :] + sep + value
    return text


def format_validation_error(err: ValidationError, source: str = "config") -> str:
    """One line naming every bad key, e.g. ``config: unknown key 'train.bach'``."""
    parts = []
    for item in err.errors():
        loc = ".".join(str(p) for p in item["loc"])
        if item["type"] == "extra_forbidden":
            parts.append(f"unknown key {loc!r}")
        else:
            msg = item["msg"].removeprefix("Value error, ")
            parts.append(f"{loc!r}: {msg}" if loc else msg)
    return f"{source}: " + "; ".join(parts)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a UserError for a missing file or a non-mapping document."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"config file {p} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise UserError(f"config file {p} must hold a mapping at the top level")
    return data


def build_config(
    schema: type[C],
    file: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
) -> C:
    """Resolve a config: schema defaults <- ``base`` <- YAML ``file`` <- ``overrides``.

    Raises:
        UserError: unknown keys or invalid values, naming each.
    """
    # Each layer is brought to the current key names on its own, so that a renamed key in an
    # old checkpoint's config is overridden by the new key on the command line, not refused.
    renamed = schema.renamed_keys
    try:
        data = migrate_keys(base or {}, renamed, warn=False)  # a stored config: not the user's
        if file is not None:
            data = deep_merge(data, migrate_keys(read_yaml(file), renamed))
    except ValueError as exc:
        raise UserError(f"{file or 'config'}: {exc}") from None
    data = apply_overrides(data, [_renamed_override(o, renamed) for o in overrides or []])
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        raise UserError(format_validation_error(err, str(file) if file else "config")) from None


def deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``a`` updated recursively with ``b`` (copies; neither input is changed)."""
    out = copy.deepcopy(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (the dotted keys ``--set`` uses)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def to_yaml(cfg: BaseModel) -> str:
    """The config as YAML (JSON-compatible types, keys in schema order)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def save_config(cfg: BaseModel, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    from deepfake_lab.io import atomic_write_text

    atomic_write_text(Path(path), to_yaml(cfg))
