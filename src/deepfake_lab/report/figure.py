"""One way to make and write a figure: ``matplotlib.figure.Figure`` on the Agg canvas (no
pyplot, no display, no global figure registry), saved as a PNG atomically."""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deepfake_lab.io import atomic_write_bytes


def new_figure(width: float, height: float) -> Figure:
    """A ``width`` x ``height`` inch figure at 100 dpi with constrained layout."""
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself to fig; savefig renders with Agg
    return fig


def save_png(fig: Figure, path: str | Path) -> Path:
    """Render ``fig`` to PNG and write it to ``path`` atomically; returns ``path``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path
