"""safe_text: user text (file names above all) made safe for each output, in one place."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from rich.console import Console

from deepfake_lab.safe_text import (
    MAX_NAME_BYTES,
    file_stem,
    for_console,
    for_html,
    for_plot,
    for_record,
    for_records,
    visible,
)

MARKUP = "[bold red]RED[on white].png"
LATIN1 = os.fsdecode(b"caf\xe9.png")  # U+DCE9 stands for the byte 0xE9
BIDI = "invoice\u202egnp.exe"


def _rendered(text: str) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(text, highlight=False)
    return console.export_text().rstrip("\n")


def test_visible_shows_hidden_characters_and_undecodable_bytes():
    assert visible("plain name.png") == "plain name.png"
    assert visible(LATIN1) == "caf\\xe9.png"
    assert visible(BIDI) == "invoice\\u202egnp.exe"
    assert visible("a\nb\tc\x1b[31m") == "a\\x0ab\\x09c\\x1b[31m"  # one line, no escape codes
    assert visible("zero\u200bwidth\u2029") == "zero\\u200bwidth\\u2029"
    assert visible("naïve café 東京 😀") == "naïve café 東京 😀"  # letters and symbols stay
    assert visible(Path("dir") / "x.png") == str(Path("dir") / "x.png")
    assert visible(b"caf\xe9.png") == "caf\\xe9.png"


def test_console_text_is_shown_as_it_is_never_as_markup():
    for name in (MARKUP, "m[/bad].png", "[link=http://x]y[/link]", "a\\[b]"):
        assert _rendered(for_console(name)) == name
    # Inside the markup of a message too, also with a backslash right before the closing tag.
    for name in (MARKUP, "m[/bad].png", "ends with a backslash\\"):
        assert _rendered(f"[red]{for_console(name)}[/]: done") == f"{name}: done"
    assert _rendered(for_console(LATIN1)) == "caf\\xe9.png"
    assert "\u202e" not in for_console(BIDI)


def test_html_escapes_markup_quotes_and_hidden_characters():
    assert for_html('<img src=x onerror="alert(1)">') == (
        "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"
    )
    assert for_html(BIDI) == "invoice\\u202egnp.exe"
    assert for_html(LATIN1) == "caf\\xe9.png"
    for_html(LATIN1).encode("utf-8")  # writable


def test_plot_text_is_never_mathtext():
    from matplotlib.figure import Figure

    title = for_plot("x$\\foo$.mp4")
    assert title == "x\\$\\foo\\$.mp4"
    fig = Figure()
    fig.suptitle(title)
    fig.canvas.draw()  # "$\\foo$" as mathtext would raise here
    text = fig.texts[0]
    assert text._preprocess_math(text.get_text()) == ("x$\\foo$.mp4", False)


def test_records_keep_text_but_write_undecodable_bytes_as_escapes():
    assert for_record(BIDI) == BIDI  # data: kept as it is (JSON escapes it, CSV quotes it)
    assert for_record(LATIN1) == "caf\\xe9.png"
    assert for_record("\ud800x") == "\\ud800x"  # not from surrogateescape: still writable
    doc = {"results": [{"path": LATIN1, "n": 1, "box": (1.0, 2.0)}], LATIN1: None}
    assert for_records(doc) == {
        "results": [{"path": "caf\\xe9.png", "n": 1, "box": [1.0, 2.0]}],
        "caf\\xe9.png": None,
    }


@pytest.mark.parametrize(
    "name",
    ["a" * 300, "é" * 150, LATIN1 * 3, BIDI, "x$\\foo$.mp4", "m[/bad].png", "a\nb"],
)
def test_file_stems_are_short_clean_and_told_apart(name):
    stem = file_stem(name, reserve=len(".timeline.png"))
    raw = stem.encode("utf-8")  # valid UTF-8: no surrogates left
    assert len(raw) + len(".timeline.png") <= MAX_NAME_BYTES
    assert "/" not in stem and "\\" not in stem and stem.isprintable()
    assert file_stem(name + "2", reserve=13) != stem


def test_safe_short_names_are_left_alone():
    for name in ("clip.mp4", "real__001.png", "[bold_red]RED[on_white].png", "x$y.png", "é.png"):
        assert file_stem(name) == name
