"""Where deepfake-lab keeps downloaded models and cached statistics."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(kind: str) -> Path:
    """``$DEEPFAKE_LAB_CACHE/<kind>``, else ``$XDG_CACHE_HOME`` (or ``~/.cache``) +
    ``/deepfake-lab/<kind>``. Kinds in use: ``models``, ``stats``."""
    root = os.environ.get("DEEPFAKE_LAB_CACHE")
    if root:
        return Path(root).expanduser() / kind
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "deepfake-lab" / kind
