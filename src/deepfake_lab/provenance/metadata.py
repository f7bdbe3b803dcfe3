"""Provenance metadata: PNG text chunks and an XMP packet saying "made by a trained algorithm".

Every generated image carries the same facts twice, for two kinds of reader:

* PNG text chunks (``Software``, ``Description``, ``Source``, ``Creation Time``) for people and
  simple viewers, plus ``deepfake-lab:provenance``, a JSON copy of :class:`ProvenanceInfo`.
* An XMP packet, in the iTXt chunk ``XML:com.adobe.xmp`` of a PNG (APP1 in JPEG, the ``XMP ``
  chunk in WebP), with the IPTC ``Iptc4xmpExt:DigitalSourceType`` =
  ``trainedAlgorithmicMedia`` that platforms look for, ``xmp:CreatorTool`` and our own
  ``dfl:`` fields.

Metadata is trivially stripped; it labels honest copies. The invisible watermark and the
signed C2PA manifest (:mod:`deepfake_lab.provenance.c2pa`) are the harder-to-remove layers.
"""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.parsers import expat
from xml.sax.saxutils import escape

import numpy as np

from deepfake_lab import __version__
from deepfake_lab.errors import UserError
from deepfake_lab.io import atomic_write_bytes

TOOL_NAME = "deepfake-lab"
IPTC_DST_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"
DIGITAL_SOURCE_TYPE = IPTC_DST_PREFIX + "trainedAlgorithmicMedia"
# IPTC source types that mean "wholly or partly made by generative AI".
AI_SOURCE_TERMS = frozenset(
    {"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "compositeSynthetic"}
)

PNG_XMP_KEY = "XML:com.adobe.xmp"
PNG_JSON_KEY = "deepfake-lab:provenance"

NS_X = "adobe:ns:meta/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_XMP = "http://ns.adobe.com/xap/1.0/"
NS_IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
# Our own namespace: an identifier, never fetched.
NS_DFL = "urn:deepfake-lab:xmp:provenance:1.0/"

MAX_XMP_BYTES = 1 << 20  # real packets are a few kB; refuse to parse anything huge
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_HEX64 = re.compile("[0-9a-f]{64}")


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ProvenanceInfo:
    """What a generated image says about its origin.

    Attributes:
        generator: name of the generator (run or export name, architecture).
        weights_sha256: sha256 (64 lowercase hex digits) of the generator's weights file.
        seed: the sampling seed, or None when unknown.
        tool: the software that made the image.
        tool_version: its version.
        created: ISO-8601 UTC timestamp, e.g. ``2025-01-31T12:00:00Z``.
        watermarked: whether an invisible watermark was embedded in the pixels.
        extra: further JSON-serialisable facts (truncation, class label, ...).
    """

    generator: str
    weights_sha256: str
    seed: int | None = None
    tool: str = TOOL_NAME
    tool_version: str = __version__
    created: str = field(default_factory=_utc_now)
    watermarked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.generator, str) or not self.generator:
            raise ValueError("generator must be a non-empty string")
        if not isinstance(self.weights_sha256, str) or not _HEX64.fullmatch(self.weights_sha256):
            raise ValueError(
                f"weights_sha256 must be 64 lowercase hex digits: {self.weights_sha256!r}"
            )
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ValueError(f"seed must be an int or None, got {self.seed!r}")
        json.dumps(self.extra)  # fail here, not halfway through writing an image

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProvenanceInfo:
        """Inverse of :meth:`to_dict`; unknown keys are ignored (newer writers may add some).

        Raises:
            ValueError: a required field is missing or has the wrong type.
        """
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        try:
            return cls(**known)
        except TypeError as e:  # a missing required field
            raise ValueError(str(e)) from e


def _description(info: ProvenanceInfo) -> str:
    return (
        f"AI-generated image (IPTC digital source type: trainedAlgorithmicMedia), synthesised "
        f"by {info.tool} {info.tool_version} with generator '{info.generator}'. "
        "It does not show a real photograph."
    )


def _xml_text(value: Any) -> str:
    """Escape a value for an XML attribute or element, dropping characters XML 1.0 forbids."""
    text = _XML_INVALID.sub("\ufffd", str(value))
    return escape(text, {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def xmp_packet(info: ProvenanceInfo) -> bytes:
    """A UTF-8 XMP packet (with ``<?xpacket?>`` wrapper) carrying ``info``.

    Reusable by any writer: PNG iTXt, JPEG APP1 (Pillow's ``xmp=``), WebP ``XMP `` chunk.
    """
    props = {
        "xmp:CreatorTool": f"{info.tool} {info.tool_version}",
        "xmp:CreateDate": info.created,
        "xmp:MetadataDate": info.created,
        "Iptc4xmpExt:DigitalSourceType": DIGITAL_SOURCE_TYPE,
        "dfl:Generator": info.generator,
        "dfl:WeightsSHA256": info.weights_sha256,
        "dfl:Tool": info.tool,
        "dfl:ToolVersion": info.tool_version,
        "dfl:Watermarked": "True" if info.watermarked else "False",
    }
    if info.seed is not None:
        props["dfl:Seed"] = str(info.seed)
    if info.extra:
        props["dfl:Extra"] = json.dumps(info.extra, sort_keys=True)
    attrs = "".join(f'\n    {k}="{_xml_text(v)}"' for k, v in props.items())
    xml = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        f'<x:xmpmeta xmlns:x="{NS_X}">\n'
        f' <rdf:RDF xmlns:rdf="{NS_RDF}">\n'
        '  <rdf:Description rdf:about=""\n'
        f'    xmlns:dc="{NS_DC}"\n'
        f'    xmlns:xmp="{NS_XMP}"\n'
        f'    xmlns:Iptc4xmpExt="{NS_IPTC_EXT}"\n'
        f'    xmlns:dfl="{NS_DFL}"{attrs}>\n'
        "   <dc:description><rdf:Alt>"
        f'<rdf:li xml:lang="x-default">{_xml_text(_description(info))}</rdf:li>'
        "</rdf:Alt></dc:description>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )
    return xml.encode("utf-8")


def png_text_chunks(info: ProvenanceInfo) -> dict[str, str]:
    """PNG text entries for ``info``: readable keys, a JSON copy and the XMP packet.

    The XMP entry (key ``XML:com.adobe.xmp``) must go into an *iTXt* chunk to be found by
    XMP readers; :func:`encode_png_with_provenance` does that, ``io.encode_png`` does not.
    """
    record = {"digital_source_type": DIGITAL_SOURCE_TYPE, **info.to_dict()}
    return {
        "Software": f"{info.tool} {info.tool_version}",
        "Description": _description(info),
        "Source": f"{info.tool} generator {info.generator}",
        "Creation Time": info.created,
        PNG_JSON_KEY: json.dumps(record, sort_keys=True, ensure_ascii=True),
        PNG_XMP_KEY: xmp_packet(info).decode("utf-8"),
    }


def encode_png_with_provenance(image: np.ndarray, info: ProvenanceInfo) -> bytes:
    """PNG bytes of a uint8 (H, W, 3) RGB image with the provenance text chunks and XMP."""
    from PIL import Image, PngImagePlugin

    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    png = PngImagePlugin.PngInfo()
    for key, value in png_text_chunks(info).items():
        if key == PNG_XMP_KEY:
            png.add_itxt(key, value, zip=False)  # XMP readers expect it uncompressed
        else:
            png.add_text(key, value)  # falls back to iTXt for non-Latin-1 values
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", pnginfo=png)
    return buf.getvalue()


def write_png_with_provenance(path: Path, image: np.ndarray, info: ProvenanceInfo) -> Path:
    """Write :func:`encode_png_with_provenance` to ``path`` atomically."""
    atomic_write_bytes(Path(path), encode_png_with_provenance(image, info))
    return Path(path)


class UnsafeXmlError(ValueError):
    """An XMP packet with a DOCTYPE or entity declaration (entity-expansion attacks)."""


def parse_xmp(data: bytes | str) -> ET.Element:
    """Parse an XMP packet, refusing DTDs and entities (no defusedxml needed).

    Raises:
        UnsafeXmlError: the packet declares a DOCTYPE or entities, or is over 1 MiB.
        ET.ParseError: it is not well-formed XML.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_XMP_BYTES:
        raise UnsafeXmlError(f"XMP packet of {len(raw)} bytes is over {MAX_XMP_BYTES}")

    def forbid(*_: Any) -> None:
        raise UnsafeXmlError("XMP with a DOCTYPE or entity declaration is refused")

    # A first pass with bare expat sees the declarations (in any encoding) before
    # ElementTree could expand anything; the C ElementTree parser offers no such hook.
    guard = expat.ParserCreate()
    guard.StartDoctypeDeclHandler = forbid
    guard.EntityDeclHandler = forbid
    guard.ExternalEntityRefHandler = forbid
    try:
        guard.Parse(raw, True)
    except expat.ExpatError as e:
        raise ET.ParseError(str(e)) from e
    return ET.fromstring(raw)


def _xmp_props(root: ET.Element) -> dict[str, str]:
    """Simple XMP properties as ``{namespace}name -> text``, from attributes or elements."""
    out: dict[str, str] = {}
    for desc in root.iter(f"{{{NS_RDF}}}Description"):
        for key, value in desc.attrib.items():
            if not key.startswith(f"{{{NS_RDF}}}"):
                out.setdefault(key, value)
        for child in desc:
            # rdf:Alt / rdf:Seq / rdf:Bag: take the first item (x-default for Alt).
            item = child.find(f".//{{{NS_RDF}}}li")
            text = (item.text if item is not None else child.text) or ""
            if text.strip() or child.get(f"{{{NS_RDF}}}resource"):
                out.setdefault(child.tag, text.strip() or child.get(f"{{{NS_RDF}}}resource", ""))
    return out


def is_ai_source_type(uri: str | None) -> bool:
    """Whether an IPTC digital source type URI means (partly) generated by a trained model."""
    if not uri:
        return False
    prefix, _, term = uri.strip().rpartition("/")
    return prefix.split("://")[-1] == IPTC_DST_PREFIX.rstrip("/").split("://")[-1] and (
        term in AI_SOURCE_TERMS
    )


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's Infinity
        return None


def _to_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _fields_from_json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except RecursionError:  # "[[[[..." nested past the parser's depth
        raise ValueError("provenance JSON is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError("provenance JSON is not an object")
    extra = data.get("extra")
    return {
        "digital_source_type": _str_or_none(data.get("digital_source_type")),
        "generator": _str_or_none(data.get("generator")),
        "weights_sha256": _str_or_none(data.get("weights_sha256")),
        "seed": _to_int(data.get("seed")),
        "tool": _str_or_none(data.get("tool")),
        "tool_version": _str_or_none(data.get("tool_version")),
        "created": _str_or_none(data.get("created")),
        "watermarked": _to_bool(data.get("watermarked")),
        "extra": extra if isinstance(extra, dict) else None,
    }


def _fields_from_xmp(packet: bytes | str) -> dict[str, Any]:
    props = _xmp_props(parse_xmp(packet))

    def get(ns: str, name: str) -> str | None:
        return _str_or_none(props.get(f"{{{ns}}}{name}"))

    extra = None
    if raw_extra := get(NS_DFL, "Extra"):
        try:
            extra = json.loads(raw_extra)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            extra = None
    return {
        "digital_source_type": get(NS_IPTC_EXT, "DigitalSourceType"),
        "generator": get(NS_DFL, "Generator"),
        "weights_sha256": get(NS_DFL, "WeightsSHA256"),
        "seed": _to_int(get(NS_DFL, "Seed")),
        # Third-party files only have xmp:CreatorTool ("Some App 2.1"): report it as the tool.
        "tool": get(NS_DFL, "Tool") or get(NS_XMP, "CreatorTool"),
        "tool_version": get(NS_DFL, "ToolVersion"),
        "created": get(NS_XMP, "CreateDate"),
        "watermarked": _to_bool(get(NS_DFL, "Watermarked")),
        "extra": extra if isinstance(extra, dict) else None,
    }


_FIELDS = (
    "digital_source_type",
    "generator",
    "weights_sha256",
    "seed",
    "tool",
    "tool_version",
    "created",
    "watermarked",
    "extra",
)


def _empty_result() -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(_FIELDS)
    out.update(ai_generated=False, source=None, sources=[], format=None, conflicts=[])
    return out


def read_metadata(path: Path) -> dict[str, Any]:
    """Read provenance tags back from a PNG, JPEG or WebP file (or any format Pillow opens).

    Never raises for a file that exists: an unrelated image gives ``None`` fields and
    ``ai_generated=False``; a file that is not a readable image adds ``error`` (a string)
    instead of raising; an XMP packet that is malformed or declares a DOCTYPE/entities is
    ignored and described under ``xmp_error``.

    Returns:
        ``digital_source_type``, ``ai_generated``, ``generator``, ``weights_sha256``,
        ``seed``, ``tool``, ``tool_version``, ``created``, ``watermarked``, ``extra``;
        ``source``: where those came from, ``"png-text"`` (our JSON chunk, preferred) or
        ``"xmp"`` or None; ``sources``: every place found; ``format``: Pillow's format name;
        ``conflicts``: fields on which the PNG text and the XMP disagree (a sign of editing).

    Raises:
        UserError: ``path`` does not exist or is not a file.
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such image file: {path}")
    out = _empty_result()
    try:
        with Image.open(path) as im:
            out["format"] = im.format
            info = dict(im.info)
            if im.format == "PNG" and PNG_JSON_KEY not in info and PNG_XMP_KEY not in info:
                # Text chunks after the pixel data only show up once the image is loaded.
                info.update(getattr(im, "text", {}))
    except Exception as e:  # any decoder failure means "not readable"
        out["error"] = f"not a readable image: {type(e).__name__}: {e}"
        return out

    found: dict[str, dict[str, Any]] = {}
    if isinstance(info.get(PNG_JSON_KEY), str):
        try:
            found["png-text"] = _fields_from_json(info[PNG_JSON_KEY])
        except ValueError:
            pass  # a damaged JSON chunk: the XMP may still be fine
    # Pillow names it "XML:com.adobe.xmp" for PNG and "xmp" for JPEG / WebP (and PNG too).
    packet = info.get(PNG_XMP_KEY) or info.get("xmp")
    if isinstance(packet, str | bytes) and packet:
        try:
            found["xmp"] = _fields_from_xmp(packet)
        except (ET.ParseError, UnsafeXmlError) as e:
            out["xmp_error"] = str(e)

    out["sources"] = list(found)
    if found:
        out["source"] = next(iter(found))
        for fields in found.values():  # png-text first; XMP fills what it lacks
            for key, value in fields.items():
                if out[key] is None and value is not None:
                    out[key] = value
        if len(found) == 2:
            a, b = found["png-text"], found["xmp"]
            out["conflicts"] = [
                k
                for k in ("digital_source_type", "generator", "weights_sha256", "seed")
                if a[k] is not None and b[k] is not None and a[k] != b[k]
            ]
        if not any(v is not None for k, v in out.items() if k in _FIELDS):
            out["source"] = None  # an XMP packet without any field we know
    out["ai_generated"] = is_ai_source_type(out["digital_source_type"])
    return out
