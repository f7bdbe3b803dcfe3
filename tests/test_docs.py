"""The README and the documentation site: size, links, nav, command table, and no pointers a
reader of the repository cannot follow (issue numbers, folders beside the checkout)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
import typer
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MKDOCS = ROOT / "mkdocs.yml"

README_LIMIT = 12_000  # bytes

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def doc_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def markdown_files() -> list[Path]:
    return [README, *doc_pages()]


def _prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code."""
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def _links(path: Path) -> list[str]:
    return _LINK.findall(_prose(path.read_text(encoding="utf-8")))


def _heading_text(raw: str) -> str:
    """A heading as rendered: markup and link targets dropped."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    return re.sub(r"[`*_]", "", text)


def _slug_mkdocs(text: str) -> str:
    # Python-Markdown's toc.slugify, which MkDocs uses.
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _slug_github(text: str) -> str:
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """Heading anchors of ``path`` that both MkDocs and GitHub generate."""
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    headings = [_heading_text(h) for h in _HEADING.findall(text)]
    return {_slug_mkdocs(h) for h in headings} & {_slug_github(h) for h in headings}


def _nav_files(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [f for item in nav for f in _nav_files(item)]
    if isinstance(nav, dict):
        return [f for value in nav.values() for f in _nav_files(value)]
    return []


# -- (a) the README stays short and keeps the two set-up commands ---------------------------


def test_readme_is_short_and_keeps_the_setup_commands():
    size = README.stat().st_size
    assert size < README_LIMIT, f"README.md is {size} bytes; move detail into docs/"
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text
    assert "make test" in text


def test_docs_have_a_landing_page():
    assert (DOCS / "index.md").is_file()


# -- (b) every relative link resolves -----------------------------------------------------


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path):
    problems = []
    for target in _links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{target}: {dest} does not exist")
            continue
        if file_part.startswith("/"):
            problems.append(f"{target}: absolute link (does not work on GitHub)")
        if anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            problems.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_readme_links_into_every_docs_page():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in _links(README)}
    missing = [p.name for p in doc_pages() if p.resolve() not in linked]
    assert not missing, f"README.md links to none of: {missing}"


# -- (c) every page is in the site's nav --------------------------------------------------


def test_every_docs_page_is_in_the_nav():
    config = yaml.safe_load(MKDOCS.read_text(encoding="utf-8"))
    nav = set(_nav_files(config["nav"]))
    pages = {p.relative_to(DOCS).as_posix() for p in doc_pages()}
    assert pages - nav == set(), "docs pages missing from mkdocs.yml nav"
    assert nav - pages == set(), "mkdocs.yml nav names pages that do not exist"


# -- (d) the README's command table lists every CLI command ---------------------------------


def _cli_commands() -> list[str]:
    from deepfake_lab.cli.app import app

    def walk(command, prefix: str) -> list[str]:
        sub = getattr(command, "commands", None)
        if not sub:
            return [prefix]
        found = []
        for name, child in sorted(sub.items()):
            if getattr(child, "hidden", False):
                continue
            found += walk(child, f"{prefix} {name}".strip())
        return found

    return walk(typer.main.get_command(app), "")


def _table_commands() -> list[str]:
    """The command of each row of the README's command table (its first cell's code)."""
    rows = re.findall(r"^\|\s*`deepfake-lab ([^`]*)`", README.read_text(encoding="utf-8"), re.M)
    return [" ".join(re.findall(r"\b[a-z][a-z0-9-]*\b", row.split(" -")[0])) for row in rows]


def test_readme_command_table_lists_every_command():
    commands = _cli_commands()
    assert len(commands) > 10, commands
    table = _table_commands()
    missing = sorted(set(commands) - set(table))
    assert not missing, f"commands missing from the README's command table: {missing}"
    unknown = sorted(set(table) - set(commands))
    assert not unknown, f"README's command table names commands that do not exist: {unknown}"


# -- (e) nothing a reader of the repository cannot follow -----------------------------------

_ISSUE_REF = re.compile(r"\bissues?\s+#?\d+|(?<![\w&/])#\d+\b|closing note", re.IGNORECASE)


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_issue_numbers_or_paths_beside_the_checkout(path: Path):
    text = path.read_text(encoding="utf-8")
    assert not _ISSUE_REF.findall(text), f"{path.name} refers to issues: {_ISSUE_REF.findall(text)}"
    assert "../shared" not in text, f"{path.name} points at a folder beside the checkout"


def test_readme_has_no_stale_status_line():
    text = README.read_text(encoding="utf-8")
    assert not re.search(r"^Status:", text, re.MULTILINE)
    assert "come next" not in text
