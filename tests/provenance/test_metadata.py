"""Provenance metadata: PNG text chunks, XMP (PNG iTXt, JPEG APP1, WebP), safe parsing."""

from __future__ import annotations

import json
import struct
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from deepfake_lab import __version__
from deepfake_lab.errors import UserError
from deepfake_lab.provenance.metadata import (
    DIGITAL_SOURCE_TYPE,
    NS_IPTC_EXT,
    NS_RDF,
    NS_XMP,
    PNG_JSON_KEY,
    PNG_XMP_KEY,
    ProvenanceInfo,
    UnsafeXmlError,
    encode_png_with_provenance,
    parse_xmp,
    png_text_chunks,
    read_metadata,
    write_png_with_provenance,
    xmp_packet,
)

SHA = "0123456789abcdef" * 4


def _info(**kw: object) -> ProvenanceInfo:
    base: dict[str, object] = dict(
        generator='fastgan-64 <run 7> & "co" ü',  # XML/Latin-1 special characters
        weights_sha256=SHA,
        seed=1234,
        watermarked=True,
        created="2025-01-31T12:00:00Z",
        extra={"truncation": 0.7},
    )
    base.update(kw)
    return ProvenanceInfo(**base)  # type: ignore[arg-type]


def _image(size: int = 24) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, out = 8, []
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]))
        pos += 12 + n
    return out


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


EXPECTED = {
    "digital_source_type": DIGITAL_SOURCE_TYPE,
    "ai_generated": True,
    "generator": 'fastgan-64 <run 7> & "co" ü',
    "weights_sha256": SHA,
    "seed": 1234,
    "tool": "deepfake-lab",
    "tool_version": __version__,
    "created": "2025-01-31T12:00:00Z",
    "watermarked": True,
    "extra": {"truncation": 0.7},
}


def test_info_dict_round_trip_and_validation() -> None:
    info = _info(seed=None, watermarked=False)
    assert ProvenanceInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
    assert ProvenanceInfo.from_dict({**info.to_dict(), "future_field": 1}) == info
    assert ProvenanceInfo(generator="g", weights_sha256=SHA).created.endswith("Z")
    with pytest.raises(ValueError, match="weights_sha256"):
        _info(weights_sha256="xyz")
    with pytest.raises(ValueError, match="seed"):
        _info(seed="12")
    with pytest.raises(ValueError):
        ProvenanceInfo.from_dict({"generator": "g"})


def test_png_round_trip_every_field(tmp_path: Path) -> None:
    path = write_png_with_provenance(tmp_path / "a.png", _image(), _info())
    meta = read_metadata(path)
    assert {k: meta[k] for k in EXPECTED} == EXPECTED
    assert meta["source"] == "png-text"
    assert meta["sources"] == ["png-text", "xmp"]
    assert meta["conflicts"] == []
    assert meta["format"] == "PNG"
    # The pixels are untouched by the metadata.
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), _image())


def test_human_readable_chunks_say_ai_generated() -> None:
    chunks = png_text_chunks(_info())
    assert chunks["Software"] == f"deepfake-lab {__version__}"
    assert "AI-generated" in chunks["Description"]
    assert json.loads(chunks[PNG_JSON_KEY])["digital_source_type"] == DIGITAL_SOURCE_TYPE


def test_xmp_is_an_uncompressed_itxt_chunk_with_digital_source_type() -> None:
    data = encode_png_with_provenance(_image(), _info())
    chunks = _png_chunks(data)
    itxt = [body for kind, body in chunks if kind == b"iTXt" and body.startswith(b"XML:")]
    assert len(itxt) == 1
    key, rest = itxt[0].split(b"\0", 1)
    assert key == PNG_XMP_KEY.encode()
    assert rest[0] == 0  # compression flag off
    _, _, xml = rest[2:].split(b"\0", 2)  # after method, language and translated keyword
    # Plain ElementTree (not our guarded parser) to prove it is ordinary well-formed XMP.
    root = ET.fromstring(xml)
    desc = root.find(f".//{{{NS_RDF}}}Description")
    assert desc is not None
    assert desc.get(f"{{{NS_IPTC_EXT}}}DigitalSourceType") == DIGITAL_SOURCE_TYPE
    assert desc.get(f"{{{NS_XMP}}}CreatorTool") == f"deepfake-lab {__version__}"
    # Text chunks come before the pixel data, where readers look without decoding.
    kinds = [kind for kind, _ in chunks]
    assert max(i for i, k in enumerate(kinds) if k in (b"tEXt", b"iTXt")) < kinds.index(b"IDAT")


def test_png_round_trip_via_xmp_alone(tmp_path: Path) -> None:
    png = PngImagePlugin.PngInfo()
    png.add_itxt(PNG_XMP_KEY, xmp_packet(_info()).decode(), zip=False)
    Image.fromarray(_image()).save(tmp_path / "x.png", pnginfo=png)
    meta = read_metadata(tmp_path / "x.png")
    assert {k: meta[k] for k in EXPECTED} == EXPECTED
    assert meta["source"] == "xmp" and meta["sources"] == ["xmp"]


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_jpeg_and_webp_xmp_round_trip(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"x.{fmt.lower()}"
    Image.fromarray(_image(32)).save(path, format=fmt, xmp=xmp_packet(_info()))
    meta = read_metadata(path)
    assert {k: meta[k] for k in EXPECTED} == EXPECTED
    assert meta["source"] == "xmp" and meta["format"] == fmt


def test_text_chunks_after_idat_are_found(tmp_path: Path) -> None:
    data = encode_png_with_provenance(_image(), _info())
    chunks = _png_chunks(data)
    meta_chunks = [(k, b) for k, b in chunks if k in (b"tEXt", b"iTXt")]
    rest = [(k, b) for k, b in chunks if k not in (b"tEXt", b"iTXt", b"IEND")]
    moved = rest + meta_chunks + [(b"IEND", b"")]
    (tmp_path / "late.png").write_bytes(data[:8] + b"".join(_chunk(k, b) for k, b in moved))
    assert read_metadata(tmp_path / "late.png")["generator"] == EXPECTED["generator"]


def test_conflicting_copies_are_reported(tmp_path: Path) -> None:
    png = PngImagePlugin.PngInfo()
    for key, value in png_text_chunks(_info()).items():
        if key == PNG_XMP_KEY:
            value = xmp_packet(_info(generator="other", seed=9)).decode()
        png.add_itxt(key, value)
    Image.fromarray(_image()).save(tmp_path / "c.png", pnginfo=png)
    meta = read_metadata(tmp_path / "c.png")
    assert meta["generator"] == EXPECTED["generator"]  # the JSON chunk wins
    assert meta["conflicts"] == ["generator", "seed"]


def test_unrelated_images_have_no_provenance(tmp_path: Path) -> None:
    Image.fromarray(_image()).save(tmp_path / "plain.png")
    Image.fromarray(_image()).save(tmp_path / "plain.jpg", quality=90)
    png = PngImagePlugin.PngInfo()
    png.add_text("Software", "GIMP 2.10")
    png.add_text(PNG_JSON_KEY, "{not json")
    Image.fromarray(_image()).save(tmp_path / "other.png", pnginfo=png)
    for name in ("plain.png", "plain.jpg", "other.png"):
        meta = read_metadata(tmp_path / name)
        assert meta["source"] is None and meta["sources"] == []
        assert meta["ai_generated"] is False and meta["digital_source_type"] is None
        assert meta["generator"] is None and "error" not in meta


def test_third_party_xmp_is_read_by_standard_fields(tmp_path: Path) -> None:
    xmp = (
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{NS_RDF}">'
        f'<rdf:Description rdf:about="" xmlns:xmp="{NS_XMP}" xmlns:I="{NS_IPTC_EXT}">'
        "<xmp:CreatorTool>Other Generator 2</xmp:CreatorTool>"
        "<I:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/compositeSynthetic"
        "</I:DigitalSourceType></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    Image.fromarray(_image()).save(tmp_path / "t.jpg", xmp=xmp.encode())
    meta = read_metadata(tmp_path / "t.jpg")
    assert meta["ai_generated"] is True and meta["tool"] == "Other Generator 2"
    assert meta["generator"] is None and meta["source"] == "xmp"

    camera = xmp.replace("compositeSynthetic", "digitalCapture")
    Image.fromarray(_image()).save(tmp_path / "c.jpg", xmp=camera.encode())
    assert read_metadata(tmp_path / "c.jpg")["ai_generated"] is False


def test_corrupt_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (tmp_path / "text.jpg").write_text("hello")
    data = encode_png_with_provenance(_image(), _info())
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 3])
    for name in ("junk.png", "text.jpg"):
        meta = read_metadata(tmp_path / name)
        assert meta["error"].startswith("not a readable image")
        assert meta["ai_generated"] is False and meta["source"] is None
    # A truncated file still yields the chunks that precede the damage, or an error.
    cut = read_metadata(tmp_path / "cut.png")
    assert cut.get("error") or cut["generator"] == EXPECTED["generator"]
    with pytest.raises(UserError, match="no such image file"):
        read_metadata(tmp_path / "absent.png")


BOMB = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{NS_RDF}">'
    f'<rdf:Description rdf:about="" xmlns:I="{NS_IPTC_EXT}" I:DigitalSourceType="&b;"/>'
    "</rdf:RDF></x:xmpmeta>"
)
EXTERNAL = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{NS_RDF}">'
    f'<rdf:Description rdf:about="" xmlns:xmp="{NS_XMP}" xmp:CreatorTool="&e;"/>'
    "</rdf:RDF></x:xmpmeta>"
)


@pytest.mark.parametrize("xml", [BOMB, EXTERNAL, BOMB.encode("utf-16")])
def test_xmp_with_doctype_or_entities_is_refused(tmp_path: Path, xml: str | bytes) -> None:
    with pytest.raises(UnsafeXmlError):
        parse_xmp(xml)
    if isinstance(xml, str):
        png = PngImagePlugin.PngInfo()
        png.add_itxt(PNG_XMP_KEY, xml)
        Image.fromarray(_image()).save(tmp_path / "evil.png", pnginfo=png)
        meta = read_metadata(tmp_path / "evil.png")
        assert "DOCTYPE" in meta["xmp_error"]
        assert meta["digital_source_type"] is None and meta["tool"] is None


def test_malformed_and_huge_xmp(tmp_path: Path) -> None:
    with pytest.raises(ET.ParseError):
        parse_xmp("<x:xmpmeta")
    with pytest.raises(UnsafeXmlError):
        parse_xmp(b"<a>" + b" " * (1 << 20) + b"</a>")
    Image.fromarray(_image()).save(tmp_path / "m.jpg", xmp=b"<not-closed")
    meta = read_metadata(tmp_path / "m.jpg")
    assert meta["xmp_error"] and meta["source"] is None and "error" not in meta
