"""User-controlled text (file names above all) made safe for each place it is shown.

A file name can hold anything but ``/`` and NUL: console markup (``[bold red]``), mathtext
(``$x$``), bidi controls that reorder what follows them (U+202E), terminal control bytes,
and, on POSIX, bytes that are not UTF-8, which Python hands over as lone surrogates
(``os.fsdecode``'s surrogateescape: byte 0xE9 becomes U+DCE9). Each output gets its own
function here, so that the rules live in one place:

================  ===========================================================================
function          what it does
================  ===========================================================================
``visible``       undecodable bytes as ``\\xNN``; control, format (bidi included) and
                  separator characters as ``\\xNN`` / ``\\uNNNN``; the rest unchanged
``for_console``   ``visible``, then rich markup escaped
``for_html``      ``visible``, then HTML-escaped (quotes included)
``for_plot``      ``visible``, then ``$`` escaped so that matplotlib draws no mathtext
``for_record``    undecodable bytes as ``\\xNN`` only: the one form file names take in JSON
                  and CSV outputs (the rest of the name is data, kept as it is)
``file_stem``     a name for an output file derived from a user name: unchanged when safe
                  and short, else cleaned, shortened and told apart by a hash
================  ===========================================================================

``\\xNN`` is Python's ``backslashreplace`` form: a name shown as ``caf\\xe9.png`` is the file
whose name holds the byte 0xE9 there (a name that really holds a backslash and ``xe9`` reads
the same: the form is for people, the file is found by listing its folder).
"""

from __future__ import annotations

import hashlib
import html
import os
import unicodedata
from typing import Any

__all__ = [
    "MAX_NAME_BYTES",
    "file_stem",
    "for_console",
    "for_html",
    "for_plot",
    "for_record",
    "for_records",
    "visible",
]

#: Longest output file name (UTF-8 bytes) that ``file_stem`` makes. File systems allow 255;
#: the atomic writes put a temp name of ``.<name>.<8 random>.tmp`` beside it (14 more).
MAX_NAME_BYTES = 200

# Unicode categories shown as escapes: controls (C0, C1, DEL), format characters (the bidi
# embeddings, overrides and isolates, zero-width marks), lone surrogates, private use and
# unassigned code points, and the line and paragraph separators (a name must stay one line).
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# surrogateescape maps an undecodable byte 0x80-0xFF to U+DC80-U+DCFF.
_ESCAPED_BYTES = range(0xDC80, 0xDD00)


def _text(value: Any) -> str:
    """``value`` as str: paths through ``os.fspath``, bytes through ``os.fsdecode``."""
    if isinstance(value, bytes):
        return os.fsdecode(value)
    if isinstance(value, os.PathLike):
        return os.fsdecode(os.fspath(value))
    return str(value)


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code in _ESCAPED_BYTES:
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(value: Any) -> str:
    """``value`` as one line of plain text that shows every character it holds.

    Undecodable bytes become ``\\xNN``; control, format (bidi), private-use, unassigned and
    separator characters become ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``; space, letters,
    marks, digits, punctuation and symbols stay as they are.
    """
    text = _text(value)
    if text.isprintable():  # the common case: nothing to do
        return text
    return "".join(_escape_char(ch) if unicodedata.category(ch) in _HIDDEN else ch for ch in text)


def for_console(value: Any) -> str:
    """``value`` for a rich console or table cell: :func:`visible`, markup escaped."""
    from rich.markup import escape

    return escape(visible(value))


def for_html(value: Any) -> str:
    """``value`` for HTML text or an attribute: :func:`visible`, then ``html.escape``."""
    return html.escape(visible(value), quote=True)


def for_plot(value: Any) -> str:
    """``value`` for a matplotlib title, label or legend: :func:`visible`, with every ``$``
    escaped so that no part of it is read as mathtext (whose errors stop the drawing)."""
    return visible(value).replace("$", r"\$")


def for_record(value: Any) -> str:
    """``value`` as JSON and CSV outputs hold it: undecodable bytes as ``\\xNN`` (text that
    every encoder and reader takes), every other character kept."""
    text = _text(value)
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    return "".join(_escape_char(ch) if "\ud800" <= ch <= "\udfff" else ch for ch in text)


def for_records(obj: Any) -> Any:
    """``obj`` (dicts, lists and tuples of JSON values, at any depth) with every string,
    keys included, passed through :func:`for_record`; paths become strings."""
    if isinstance(obj, dict):
        return {for_records(k): for_records(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [for_records(v) for v in obj]
    if isinstance(obj, (str, bytes, os.PathLike)):
        return for_record(obj)
    return obj


def file_stem(name: Any, reserve: int = 0, max_bytes: int = MAX_NAME_BYTES) -> str:
    """A file-name stem for an output derived from the user-controlled ``name``.

    Args:
        name: e.g. the input's file name.
        reserve: bytes the caller adds after the stem (``".timeline.png"``: 13).
        max_bytes: the longest whole name, stem and ``reserve`` together.

    Returns:
        ``name`` itself when it is valid UTF-8, holds no path separator nor any character
        :func:`visible` would escape, and fits; otherwise ``name`` with each such character
        replaced by ``_``, cut to fit, and ``~`` plus 8 hex digits of a hash of the original
        bytes added, so that two names that clean to the same stem stay apart.
    """
    text = _text(name)
    room = max_bytes - reserve
    clean = "".join(
        "_"
        if ch in "/\\" or unicodedata.category(ch) in _HIDDEN or ord(ch) in _ESCAPED_BYTES
        else ch
        for ch in text
    )
    if clean == text and len(clean.encode("utf-8")) <= room:
        return clean
    tag = "~" + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    cut = clean.encode("utf-8")[: max(room - len(tag), 1)].decode("utf-8", "ignore")
    return cut + tag
