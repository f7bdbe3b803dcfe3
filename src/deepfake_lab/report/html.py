"""Self-contained ``index.html`` reports: inline CSS, no scripts, no external assets.

Every piece of text goes through ``safe_text.for_html`` (``html.escape``, with undecodable
bytes, controls and bidi marks of file names shown as ``\\xNN``/``\\uNNNN``); image paths are
relative to the report so that a run folder can be moved or zipped and still open correctly.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote

from deepfake_lab.io import atomic_write_text
from deepfake_lab.safe_text import for_html

__all__ = ["Table", "ReportImage", "Section", "render_report", "write_report"]


@dataclass
class Table:
    """A table: a header row and body rows (cells of any type, shown with ``str``).

    Floats are shown with 6 significant digits; ints and strings as they are.
    """

    header: Sequence[Any]
    rows: Sequence[Sequence[Any]]
    caption: str | None = None


@dataclass
class ReportImage:
    """A picture: ``path`` relative to the report file (e.g. ``"samples/grid-000200.png"``)."""

    path: str | PurePath
    caption: str = ""


@dataclass
class Section:
    """One ``<section>``: a heading, then paragraphs, tables and images in that order."""

    heading: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    images: list[ReportImage] = field(default_factory=list)


_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 0 auto; max-width: 1100px; padding: 24px; color: #1d1d1f; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 16px; }
h2 { font-size: 1.25em; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #ddd; }
p { margin: 8px 0; max-width: 75ch; }
table { border-collapse: collapse; margin: 12px 0; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; color: #555; padding-bottom: 4px; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; }
th { background: #f4f4f6; }
td.num { text-align: right; }
tbody tr:nth-child(even) { background: #fafafa; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; margin: 12px 0; }
figure { margin: 0; max-width: 100%; }
figure img { max-width: 100%; height: auto; image-rendering: pixelated;
             border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
footer { margin-top: 40px; color: #888; font-size: 0.85em; }
""".strip()


def _esc(value: Any) -> str:
    return for_html(value)


def _cell(value: Any) -> str:
    is_num = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if is_num and not isinstance(value, numbers.Integral):
        text = f"{float(value):.6g}"  # also numpy floats; nan/inf print as such
    else:
        text = str(value)
    cls = ' class="num"' if is_num else ""
    return f"<td{cls}>{_esc(text)}</td>"


def _image_src(path: str | PurePath) -> str:
    """URL-quoted POSIX form of a relative path; absolute paths are refused."""
    raw = str(path)
    if PurePosixPath(raw).is_absolute() or PureWindowsPath(raw).is_absolute():
        raise ValueError(f"report image paths must be relative to the report, got {raw!r}")
    posix = PureWindowsPath(raw).as_posix() if "\\" in raw else raw
    # A name with undecodable bytes links to those very bytes, percent-encoded.
    return quote(posix, safe="/._-~", errors="surrogateescape")


def _table(t: Table) -> list[str]:
    out = ["<table>"]
    if t.caption:
        out.append(f"<caption>{_esc(t.caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in t.header) + "</tr></thead>")
    out.append("<tbody>")
    for row in t.rows:
        out.append("<tr>" + "".join(_cell(v) for v in row) + "</tr>")
    out.append("</tbody></table>")
    return out


def _section(s: Section) -> list[str]:
    out = ["<section>", f"<h2>{_esc(s.heading)}</h2>"]
    out += [f"<p>{_esc(p)}</p>" for p in s.paragraphs]
    for t in s.tables:
        out += _table(t)
    if s.images:
        out.append('<div class="figures">')
        for im in s.images:
            alt = _esc(im.caption or PurePosixPath(str(im.path)).name)
            out.append(f'<figure><img src="{_esc(_image_src(im.path))}" alt="{alt}">')
            if im.caption:
                out.append(f"<figcaption>{_esc(im.caption)}</figcaption>")
            out.append("</figure>")
        out.append("</div>")
    out.append("</section>")
    return out


def render_report(title: str, sections: Sequence[Section], footer: str | None = None) -> str:
    """The HTML text of a report (see ``write_report``)."""
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    for s in sections:
        lines += _section(s)
    if footer:
        lines.append(f"<footer>{_esc(footer)}</footer>")
    lines += ["</body>", "</html>", ""]
    return "\n".join(lines)


def write_report(
    path: Path, title: str, sections: Sequence[Section], footer: str | None = None
) -> Path:
    """Write a self-contained HTML report atomically.

    Args:
        path: the HTML file to write, usually ``<run folder>/index.html``; image paths in
            the sections are relative to its folder.
        title: page title and top heading (plain text; escaped).
        sections: the page content, in order.
        footer: optional plain-text line at the bottom (e.g. version and date).

    Returns:
        ``path``.
    """
    path = Path(path)
    atomic_write_text(path, render_report(title, sections, footer))
    return path
