"""Fuzzing provenance metadata: a mutated XMP packet parses or raises one of the two parse
errors, and ``read_metadata`` on a mutated tagged PNG or JPEG never raises."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from PIL import Image, PngImagePlugin

from deepfake_lab.provenance import metadata as md
from fuzz_tools import fuzz_settings, memory_cap, mutated

INFO = md.ProvenanceInfo(
    generator="dcgan:00001-faces",
    weights_sha256="ab" * 32,
    seed=7,
    created="2026-01-01T00:00:00Z",
    watermarked=True,
    extra={"kimg": 1.5},
)
PACKET = md.xmp_packet(INFO)
PIXELS = np.full((8, 8, 3), 120, np.uint8)


def _png(json_text: str | None = None) -> bytes:
    if json_text is None:
        return md.encode_png_with_provenance(PIXELS, INFO)
    info = PngImagePlugin.PngInfo()
    info.add_text(md.PNG_JSON_KEY, json_text)
    buf = io.BytesIO()
    Image.fromarray(PIXELS).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(PIXELS).save(buf, "JPEG", xmp=PACKET)
    return buf.getvalue()


def _with_extra(text: bytes) -> bytes:
    """The packet with its ``dfl:Extra`` attribute's value replaced by ``text``."""
    start = PACKET.index(b'dfl:Extra="') + len(b'dfl:Extra="')
    return PACKET[:start] + text + PACKET[PACKET.index(b'"', start) :]


ENTITIES = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;&a;</x>'


@fuzz_settings(examples=60, deadline_s=5)
@given(packet=mutated([PACKET, ENTITIES]))
# Found by fuzzing: JSON nested past the parser's depth raised RecursionError.
@example(packet=_with_extra(b"[" * 100_000))
@example(packet=_with_extra(b'{"kimg": 1e999}'))
@example(packet=b"<x>" * 300_000)  # over the size limit
def test_a_mutated_xmp_packet_parses_or_raises_a_parse_error(packet: bytes) -> None:
    with memory_cap():
        try:
            fields = md._fields_from_xmp(packet)
        except (ET.ParseError, md.UnsafeXmlError):
            return
    assert set(fields) >= {"generator", "seed", "extra"}
    assert fields["extra"] is None or isinstance(fields["extra"], dict)
    assert fields["seed"] is None or isinstance(fields["seed"], int)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("xmp-fuzz")


@fuzz_settings(examples=60, deadline_s=5)
@given(data=mutated([_png(), _jpeg()]))
# Found by fuzzing: a JSON seed of Infinity (OverflowError) and deep nesting (RecursionError).
@example(data=_png('{"seed": Infinity, "generator": "g"}'))
@example(data=_png("[" * 100_000))
def test_read_metadata_never_raises_on_a_damaged_file(folder: Path, data: bytes) -> None:
    path = folder / "image.png"
    path.write_bytes(data)
    with memory_cap():
        out = md.read_metadata(path)
    assert isinstance(out["ai_generated"], bool)
    assert out["seed"] is None or isinstance(out["seed"], int)
