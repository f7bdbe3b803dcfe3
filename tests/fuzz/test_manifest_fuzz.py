"""Fuzzing manifest reading: a mutated or hostile detection manifest gives samples inside
its folder or one UserError line, never another exception."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from deepfake_lab.data.detection_manifest import read_manifest
from deepfake_lab.errors import UserError
from fuzz_tools import fuzz_settings, mutated

VALID = (
    "# a hand-written manifest\n"
    + json.dumps({"path": "real/a.png", "label": "real", "group": "v1"})
    + "\n"
    + json.dumps({"path": "fake/b.png", "label": 1, "source": "gan"})
    + "\n\n"
    + json.dumps({"path": "fake/../real/a.png", "label": "FAKE", "group": 7})
    + "\n"
).encode()

# Path strings with what trips file-name handling: parent steps, absolute paths, NUL, lone
# surrogates (valid JSON escapes that no file name can encode), long names, odd separators.
_PATH_TEXT = st.one_of(
    st.sampled_from(["real/a.png", "../x.png", "/etc/passwd", "a\0b", "\ud800.png", "."]),
    st.text(st.characters(codec=None), max_size=40),
    st.text(st.sampled_from("./\\a~\0"), max_size=20),
    st.integers(1, 5000).map(lambda n: "x" * n),
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=10,
)
_RECORD = st.fixed_dictionaries(
    {"path": _PATH_TEXT | _JSON},
    optional={"label": st.sampled_from(["real", "fake", 0, 1, 2, True, None]) | _JSON,
              "source": _JSON, "group": _JSON},
)  # fmt: skip
_LINES = st.lists(_RECORD.map(lambda r: json.dumps(r)) | _JSON.map(json.dumps), max_size=6)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("manifest-fuzz")
    for rel in ("data/real/a.png", "data/fake/b.png", "outside.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / rel)
    return root


def _read_both_ways(folder: Path, data: bytes) -> None:
    manifest = folder / "data" / "m.jsonl"
    manifest.write_bytes(data)
    root = manifest.parent.resolve()
    for allow_outside in (False, True):
        try:
            samples = read_manifest(manifest, allow_outside=allow_outside)
        except UserError as exc:
            assert "\n" not in str(exc)
            continue
        assert samples and all(s.label in (0, 1) for s in samples)
        if not allow_outside:
            assert all(s.path.resolve().is_relative_to(root) for s in samples)


@fuzz_settings(examples=60, deadline_s=5)
@given(data=mutated([VALID]))
@example(data=b"[" * 100_000)  # nesting past the JSON parser's depth: RecursionError
@example(data=b'{"path": "' + b"x" * 5000 + b'", "label": 0}')  # ENAMETOOLONG from is_file
def test_a_mutated_manifest_raises_only_user_errors(folder: Path, data: bytes) -> None:
    _read_both_ways(folder, data)


@fuzz_settings(examples=60, deadline_s=5)
@given(lines=_LINES)
@example(lines=[json.dumps({"path": "\ud800.png", "label": 0})])  # UnicodeEncodeError
@example(lines=[json.dumps({"path": "a\0b", "label": 0})])  # ValueError: embedded null
def test_hostile_records_raise_only_user_errors(folder: Path, lines: list[str]) -> None:
    _read_both_ways(folder, "\n".join(lines).encode("utf-8", "surrogatepass"))
