"""Signed C2PA manifests (Content Credentials) for generated images, via ``c2pa-python``.

A manifest binds, under an X.509 signature, a hash of the image bytes to assertions: here a
``c2pa.created`` action with IPTC digital source type ``trainedAlgorithmicMedia`` and an
``org.deepfake-lab.generator`` assertion naming the generator, its weights and the seed.

No network at run time: no timestamp authority unless asked for, no OCSP, no remote
manifests. Thumbnails are off (the c2pa default embeds a ~180 kB JPEG even in a 32 px PNG).

Validation states reported by c2pa (c2pa-python 0.38 / c2pa-rs 0.91):

* ``"Trusted"``: signature and hashes good, and the chain ends in a trust anchor given to
  :func:`read_c2pa`.
* ``"Valid"``: signature and hashes good, but the signer is not trusted: a self-made
  certificate reads as ``Valid`` with the failure code ``signingCredential.untrusted``.
* ``"Invalid"``: e.g. ``assertion.dataHash.mismatch`` after the pixels were changed.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepfake_lab import __version__
from deepfake_lab.errors import UserError
from deepfake_lab.io import atomic_write_bytes
from deepfake_lab.provenance.metadata import (
    DIGITAL_SOURCE_TYPE,
    TOOL_NAME,
    ProvenanceInfo,
    is_ai_source_type,
)

GENERATOR_ASSERTION = "org.deepfake-lab.generator"
ALGORITHMS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")
MIME_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}
TEST_CA_FILENAME = "test-ca.pem"
INSTALL_HINT = "C2PA needs the c2pa-python package: pip install 'deepfake-lab[c2pa]'"
# Offline, and no thumbnail: settings keys of c2pa-rs (unknown keys are silently ignored).
_SETTINGS: dict[str, Any] = {
    "builder": {"thumbnail": {"enabled": False}},
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
}
_CERT_HINT = (
    "the signing certificate must be an end-entity certificate issued by a CA (not "
    "self-signed) with the digitalSignature key usage and the emailProtection or "
    "documentSigning extended key usage, first in the PEM chain, matching the private key"
)


@dataclass(frozen=True)
class SignerConfig:
    """Signing credentials.

    Attributes:
        private_key: PEM private key (PKCS#8) of the signing certificate.
        cert_chain: PEM certificates: the signing certificate first, then intermediates.
        algorithm: one of :data:`ALGORITHMS`, matching the key type (EC P-256 -> es256).
        tsa_url: RFC 3161 timestamp authority, contacted while signing; None (default)
            signs offline, so the signature is only checked against the certificate's
            validity period at read time.
    """

    private_key: Path
    cert_chain: Path
    algorithm: str = "es256"
    tsa_url: str | None = None


def _c2pa() -> Any:
    try:
        import c2pa
    except ImportError as e:
        raise UserError(INSTALL_HINT) from e
    return c2pa


def _read_pem(path: Path, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UserError(f"cannot read the C2PA {what} {path}: {e.strerror or e}") from e
    if b"-----BEGIN " not in data:
        raise UserError(f"the C2PA {what} {path} is not a PEM file")
    return data


def _mime(path: Path) -> str:
    mime = MIME_TYPES.get(Path(path).suffix.lower())
    if mime is None:
        raise UserError(f"C2PA signing supports {', '.join(MIME_TYPES)} files, not {path}")
    return mime


def _manifest(info: ProvenanceInfo, title: str, mime: str) -> dict[str, Any]:
    agent = {"name": TOOL_NAME, "version": __version__}
    created = {
        "action": "c2pa.created",
        "digitalSourceType": DIGITAL_SOURCE_TYPE,
        "softwareAgent": agent,
        "when": info.created,
    }
    return {
        "claim_generator_info": [agent],
        "title": title,
        "format": mime,
        "assertions": [
            # c2pa-rs writes this as c2pa.actions.v2 (claim version 2).
            {"label": "c2pa.actions", "data": {"actions": [created]}},
            {"label": GENERATOR_ASSERTION, "data": info.to_dict()},
        ],
    }


def sign_image(src: Path, dst: Path, info: ProvenanceInfo, signer: SignerConfig) -> None:
    """Embed a signed C2PA manifest in a copy of ``src`` written atomically to ``dst``.

    ``src`` and ``dst`` may be the same path. PNG text chunks and XMP already in ``src`` are
    kept; the manifest's hash covers every byte outside its own chunk, so editing them
    afterwards invalidates it just as a pixel edit does. Adds about 3 kB per image.

    Raises:
        UserError: c2pa-python missing, unreadable key or certificate, unsupported file
            type, or credentials that c2pa rejects.
    """
    c2pa = _c2pa()
    src, dst = Path(src), Path(dst)
    mime = _mime(src)
    if _mime(dst) != mime:
        raise UserError(f"C2PA signing keeps the format: {dst} must be a {mime} file like {src}")
    if signer.algorithm not in ALGORITHMS:
        raise UserError(f"unknown C2PA algorithm {signer.algorithm!r}; use one of {ALGORITHMS}")
    key = _read_pem(signer.private_key, "private key")
    certs = _read_pem(signer.cert_chain, "certificate chain")
    try:
        source = src.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read the image {src}: {e.strerror or e}") from e

    signed = io.BytesIO()
    try:
        signer_info = c2pa.C2paSignerInfo(signer.algorithm, certs, key, signer.tsa_url)
        context = c2pa.Context.from_dict(_SETTINGS)
        with (
            c2pa.Signer.from_info(signer_info) as c2pa_signer,
            c2pa.Builder(_manifest(info, dst.name, mime), context) as builder,
        ):
            builder.sign(c2pa_signer, mime, io.BytesIO(source), signed)
    except c2pa.C2paError as e:
        hint = f" ({_CERT_HINT})" if isinstance(e, c2pa.C2paError.Signature) else ""
        raise UserError(f"C2PA signing of {src} failed: {e}{hint}") from e
    atomic_write_bytes(dst, signed.getvalue())


# Errors that mean "there is C2PA data but it is damaged" rather than "not an image".
_DAMAGED = ("Verify", "Manifest", "Decoding", "Signature", "Assertion", "Json", "RemoteManifest")


def _report(store: dict[str, Any]) -> dict[str, Any]:
    label = store.get("active_manifest")
    manifest = store.get("manifests", {}).get(label, {})
    state = store.get("validation_state")
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = results.get("failure", store.get("validation_status") or [])

    assertions = {a.get("label"): a.get("data") for a in manifest.get("assertions", [])}
    actions = (assertions.get("c2pa.actions.v2") or assertions.get("c2pa.actions") or {}).get(
        "actions", []
    )
    source_type = next(
        (a.get("digitalSourceType") for a in actions if a.get("action") == "c2pa.created"), None
    )
    gen_info = manifest.get("claim_generator_info") or []
    if manifest.get("claim_generator"):
        claim_generator = manifest["claim_generator"]  # claim v1 files
    elif gen_info:
        claim_generator = " ".join(str(gen_info[0].get(k, "")) for k in ("name", "version"))
    else:
        claim_generator = None
    sig = manifest.get("signature_info") or {}
    return {
        "present": True,
        "valid": state in ("Valid", "Trusted"),
        "trusted": state == "Trusted",
        "validation_state": state,
        "validation_errors": [
            {"code": f.get("code"), "explanation": f.get("explanation")} for f in failures
        ],
        "manifest_label": label,
        "claim_generator": claim_generator.strip() if claim_generator else None,
        "actions": [a.get("action") for a in actions],
        "digital_source_type": source_type,
        "ai_generated": is_ai_source_type(source_type),
        "generator": assertions.get(GENERATOR_ASSERTION),
        "signer": {
            "issuer": sig.get("issuer"),
            "common_name": sig.get("common_name"),
            "alg": sig.get("alg"),
            "time": sig.get("time"),
            "cert_serial_number": sig.get("cert_serial_number"),
        },
    }


def read_c2pa(path: Path, trust_anchors: Path | None = None) -> dict[str, Any] | None:
    """Read and validate the C2PA manifest of an image, offline.

    Args:
        path: the image.
        trust_anchors: PEM root certificates to trust (e.g. the ``test-ca.pem`` written by
            :func:`make_test_credentials`); without them no signer is ``trusted``.

    Returns:
        None when the file carries no manifest (or is a type c2pa does not handle).
        Otherwise a dict: ``present``, ``valid`` (signature and hashes good),
        ``trusted``, ``validation_state`` ("Trusted"/"Valid"/"Invalid"),
        ``validation_errors`` (``[{code, explanation}]``; ``signingCredential.untrusted``
        for an unknown signer, ``assertion.dataHash.mismatch`` for changed bytes),
        ``claim_generator``, ``actions``, ``digital_source_type``, ``ai_generated``,
        ``generator`` (our assertion's data or None) and ``signer``: ``common_name`` and
        ``issuer`` of the signing certificate (c2pa's "issuer" is the organisation (O) of
        the certificate's *subject*, not of its CA), ``alg``, ``time`` (only with a TSA),
        ``cert_serial_number``. When c2pa cannot parse the file at all, the dict has
        ``present: False`` and ``error``; when the manifest itself is damaged,
        ``present: True``, ``valid: False`` and ``error``.

    Raises:
        UserError: ``path`` does not exist, or c2pa-python is not installed.
    """
    c2pa = _c2pa()
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such image file: {path}")
    settings = json.loads(json.dumps(_SETTINGS))
    if trust_anchors is not None:
        settings["trust"] = {"trust_anchors": _read_pem(trust_anchors, "trust anchors").decode()}
    try:
        with open(path, "rb") as fh:
            context = c2pa.Context.from_dict(settings)
            # The suffix is only a hint: c2pa sniffs the container from the bytes.
            reader = c2pa.Reader.try_create(MIME_TYPES.get(path.suffix.lower()), fh, None, context)
            if reader is None:
                return None
            with reader:
                store = json.loads(reader.json())
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from e
    except c2pa.C2paError.NotSupported:
        return None
    except c2pa.C2paError as e:
        damaged = any(isinstance(e, getattr(c2pa.C2paError, n, ())) for n in _DAMAGED)
        return {
            "present": damaged,
            "valid": False,
            "trusted": False,
            "validation_state": "Invalid" if damaged else None,
            "validation_errors": [{"code": type(e).__name__.lstrip("_"), "explanation": str(e)}],
            "error": str(e),
        }
    return _report(store)


def make_test_credentials(
    folder: Path, common_name: str = "deepfake-lab test signer"
) -> SignerConfig:
    """Create a throw-away CA and an ES256 signing certificate in ``folder``. Testing only.

    Writes ``test-ca.pem`` (the root: pass it to :func:`read_c2pa` as ``trust_anchors``),
    ``signer-chain.pem`` (the end-entity certificate) and ``signer-key.pem`` (mode 0600).
    Anyone can make such a certificate, so a manifest signed with it proves nothing about
    who signed; real use needs a certificate from a CA on the C2PA trust list.

    c2pa refuses self-signed signing certificates, so the signer is issued by a separate
    CA: ``basicConstraints CA:FALSE``, ``keyUsage digitalSignature`` (critical),
    ``extendedKeyUsage emailProtection``, subject and authority key identifiers.
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as e:  # c2pa-python depends on cryptography
        raise UserError(INSTALL_HINT) from e

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "deepfake-lab (test only)"),
            ]
        )

    def usage(**flags: bool) -> x509.KeyUsage:
        fields = ("digital_signature", "content_commitment", "key_encipherment")
        fields += ("data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")
        fields += ("encipher_only", "decipher_only")
        return x509.KeyUsage(**{f: flags.get(f, False) for f in fields})

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = name("deepfake-lab test CA")

    def base(subject: x509.Name, public_key: Any) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))  # tolerate small clock skew
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
        )

    ca = (
        base(ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        base(name(common_name), key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    atomic_write_bytes(folder / TEST_CA_FILENAME, ca.public_bytes(pem))
    atomic_write_bytes(folder / "signer-chain.pem", leaf.public_bytes(pem))
    key_path = folder / "signer-key.pem"
    key_bytes = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    atomic_write_bytes(key_path, key_bytes)
    key_path.chmod(0o600)
    return SignerConfig(private_key=key_path, cert_chain=folder / "signer-chain.pem")
