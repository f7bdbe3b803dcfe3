"""C2PA manifests: sign, read back, detect tampering, refuse bad credentials."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("c2pa", reason="c2pa-python is not installed (deepfake-lab[c2pa])")

from deepfake_lab import __version__  # noqa: E402
from deepfake_lab.errors import UserError  # noqa: E402
from deepfake_lab.provenance.c2pa import (  # noqa: E402
    TEST_CA_FILENAME,
    SignerConfig,
    make_test_credentials,
    read_c2pa,
    sign_image,
)
from deepfake_lab.provenance.metadata import (  # noqa: E402
    DIGITAL_SOURCE_TYPE,
    ProvenanceInfo,
    read_metadata,
    write_png_with_provenance,
)

SHA = "ab" * 32
INFO = ProvenanceInfo(generator="fastgan-64", weights_sha256=SHA, seed=7, watermarked=True)


@pytest.fixture(scope="module")
def creds(tmp_path_factory: pytest.TempPathFactory) -> SignerConfig:
    return make_test_credentials(tmp_path_factory.mktemp("creds"))


def _pixels(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def _signed_png(tmp_path: Path, creds: SignerConfig) -> Path:
    src = write_png_with_provenance(tmp_path / "src.png", _pixels(), INFO)
    sign_image(src, tmp_path / "signed.png", INFO, creds)
    return tmp_path / "signed.png"


def _replace_idat(data: bytes, pixels: np.ndarray) -> bytes:
    """The same PNG with other pixels: every chunk kept, IDAT swapped (a pixel edit)."""

    def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
        pos, out = 8, []
        while pos < len(png):
            (n,) = struct.unpack(">I", png[pos : pos + 4])
            out.append((png[pos + 4 : pos + 8], png[pos : pos + 12 + n]))
            pos += 12 + n
        return out

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    idat = b"".join(raw for kind, raw in chunks(buf.getvalue()) if kind == b"IDAT")
    out, done = [], False
    for kind, raw in chunks(data):
        if kind != b"IDAT":
            out.append(raw)
        elif not done:
            out.append(idat)
            done = True
    return data[:8] + b"".join(out)


def test_sign_and_read_back(tmp_path: Path, creds: SignerConfig) -> None:
    signed = _signed_png(tmp_path, creds)
    report = read_c2pa(signed)
    assert report is not None and report["present"] is True
    assert report["valid"] is True and report["trusted"] is False
    assert report["validation_state"] == "Valid"
    # A self-made CA is not on any trust list: c2pa says so, yet calls the signature valid.
    assert [e["code"] for e in report["validation_errors"]] == ["signingCredential.untrusted"]
    assert report["actions"] == ["c2pa.created"]
    assert report["digital_source_type"] == DIGITAL_SOURCE_TYPE
    assert report["ai_generated"] is True
    assert report["claim_generator"] == f"deepfake-lab {__version__}"
    assert report["generator"]["generator"] == "fastgan-64"
    assert report["generator"]["weights_sha256"] == SHA
    assert report["generator"]["seed"] == 7
    assert report["signer"]["common_name"] == "deepfake-lab test signer"
    assert report["signer"]["issuer"] == "deepfake-lab (test only)"
    # The pixels and the metadata tags survive signing.
    assert np.array_equal(np.asarray(Image.open(signed).convert("RGB")), _pixels())
    meta = read_metadata(signed)
    assert meta["generator"] == "fastgan-64" and meta["ai_generated"] is True


def test_trusted_with_our_ca_as_anchor(tmp_path: Path, creds: SignerConfig) -> None:
    signed = _signed_png(tmp_path, creds)
    report = read_c2pa(signed, trust_anchors=creds.cert_chain.parent / TEST_CA_FILENAME)
    assert report is not None
    assert report["validation_state"] == "Trusted" and report["trusted"] is True
    assert report["validation_errors"] == []


def test_changed_pixels_make_the_manifest_invalid(tmp_path: Path, creds: SignerConfig) -> None:
    signed = _signed_png(tmp_path, creds)
    tampered = tmp_path / "tampered.png"
    tampered.write_bytes(_replace_idat(signed.read_bytes(), _pixels(seed=1)))
    assert not np.array_equal(np.asarray(Image.open(tampered)), _pixels())
    report = read_c2pa(tampered)
    assert report is not None and report["present"] is True
    assert report["valid"] is False and report["validation_state"] == "Invalid"
    assert "assertion.dataHash.mismatch" in {e["code"] for e in report["validation_errors"]}


def test_damaged_manifest_is_reported_not_raised(tmp_path: Path, creds: SignerConfig) -> None:
    data = bytearray(_signed_png(tmp_path, creds).read_bytes())
    box = data.find(b"caBX")
    data[box + 200 : box + 260] = bytes(b ^ 0xFF for b in data[box + 200 : box + 260])
    (tmp_path / "broken.png").write_bytes(bytes(data))
    report = read_c2pa(tmp_path / "broken.png")
    assert report is not None and report["valid"] is False and report["error"]


def test_jpeg_round_trip(tmp_path: Path, creds: SignerConfig) -> None:
    Image.fromarray(_pixels()).save(tmp_path / "a.jpg", quality=90)
    sign_image(tmp_path / "a.jpg", tmp_path / "a.jpg", INFO, creds)  # in place
    report = read_c2pa(tmp_path / "a.jpg")
    assert report is not None and report["valid"] and report["ai_generated"]


def test_unsigned_and_unrelated_files_give_none(tmp_path: Path) -> None:
    Image.fromarray(_pixels()).save(tmp_path / "plain.png")
    Image.fromarray(_pixels()).save(tmp_path / "plain.jpg")
    (tmp_path / "notes.txt").write_text("hello")
    png = (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 0)
        + b"IEND"
        + struct.pack(">I", zlib.crc32(b"IEND"))
    )
    (tmp_path / "empty.png").write_bytes(png)
    for name in ("plain.png", "plain.jpg", "notes.txt"):
        assert read_c2pa(tmp_path / name) is None
    assert read_c2pa(tmp_path / "empty.png") is None  # a valid PNG with no pixels
    # A .png that is not a PNG: c2pa cannot parse it, reported rather than raised.
    (tmp_path / "junk.png").write_bytes(b"definitely not a png")
    junk = read_c2pa(tmp_path / "junk.png")
    assert junk is not None and junk["present"] is False and junk["valid"] is False
    assert "could not be parsed" in junk["error"]
    with pytest.raises(UserError, match="no such image file"):
        read_c2pa(tmp_path / "absent.png")


def test_bad_credentials_are_user_errors(tmp_path: Path, creds: SignerConfig) -> None:
    src = write_png_with_provenance(tmp_path / "src.png", _pixels(), INFO)
    missing = SignerConfig(private_key=tmp_path / "nope.pem", cert_chain=creds.cert_chain)
    with pytest.raises(UserError, match="cannot read the C2PA private key"):
        sign_image(src, tmp_path / "out.png", INFO, missing)
    (tmp_path / "bad.pem").write_text("not a pem")
    with pytest.raises(UserError, match="not a PEM file"):
        sign_image(
            src, tmp_path / "out.png", INFO, SignerConfig(tmp_path / "bad.pem", creds.cert_chain)
        )
    # A self-signed certificate (the CA itself, with the wrong key) is refused by c2pa.
    ca = creds.cert_chain.parent / TEST_CA_FILENAME
    with pytest.raises(UserError, match="C2PA signing of .* failed") as err:
        sign_image(src, tmp_path / "out.png", INFO, SignerConfig(creds.private_key, ca))
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="algorithm"):
        sign_image(
            src,
            tmp_path / "out.png",
            INFO,
            SignerConfig(creds.private_key, creds.cert_chain, "rsa"),
        )
    with pytest.raises(UserError, match="keeps the format"):
        sign_image(src, tmp_path / "out.jpg", INFO, creds)
    assert not (tmp_path / "out.png").exists()  # nothing half-written


def test_missing_library_is_a_user_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "c2pa", None)  # makes `import c2pa` raise ImportError
    Image.fromarray(_pixels()).save(tmp_path / "plain.png")
    with pytest.raises(UserError, match=r"deepfake-lab\[c2pa\]"):
        read_c2pa(tmp_path / "plain.png")
