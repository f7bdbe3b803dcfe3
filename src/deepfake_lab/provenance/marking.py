"""Writing generated images with their provenance: the one path every generated image takes.

A ``Marker`` is made once per generator and writes each image as PNG with

1. the invisible watermark (``watermark.embed``) carrying the generator fingerprint and,
   with an owner secret, an HMAC code (unless ``watermark=False``: ``--no-watermark``);
2. PNG text and XMP metadata with IPTC ``DigitalSourceType = trainedAlgorithmicMedia``,
   the generator identity, seed and tool version (always);
3. a signed C2PA manifest when a signing key and certificate are configured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_lab.errors import UserError
from deepfake_lab.io import atomic_write_bytes
from deepfake_lab.provenance.metadata import ProvenanceInfo, encode_png_with_provenance
from deepfake_lab.provenance.watermark import (
    DEFAULT_STRENGTH,
    MIN_SIDE,
    Payload,
    embed,
    make_payload,
)

#: Environment variable holding the owner's watermark secret (instead of ``--secret-file``).
SECRET_ENV = "DEEPFAKE_LAB_WATERMARK_SECRET"

NOT_SIGNED_NOTE = (
    "images are watermarked and tagged as AI-generated, but not signed: configure a C2PA key "
    "and certificate (--sign-key, --sign-cert) to attach content credentials"
)


@dataclass
class ProvenanceOptions:
    """How generated images are marked.

    Attributes:
        watermark: embed the invisible mark (opting out is explicit and recorded).
        secret_file: file whose bytes are the owner's secret for the HMAC code; else the
            ``DEEPFAKE_LAB_WATERMARK_SECRET`` variable; else no code.
        strength: watermark strength (lattice step / band RMS).
        sign_key, sign_cert: PEM private key and certificate chain for C2PA signing.
        sign_algorithm: the key's C2PA algorithm (es256, ps256, ed25519, ...).
        opt_out_reason: why images are unmarked, recorded with ``watermark=False``: the
            user's ``--no-watermark``, or the internal reason (detector training data).
    """

    watermark: bool = True
    secret_file: str | Path | None = None
    strength: float = DEFAULT_STRENGTH
    sign_key: str | Path | None = None
    sign_cert: str | Path | None = None
    sign_algorithm: str = "es256"
    opt_out_reason: str = "--no-watermark"

    def secret(self) -> bytes | None:
        if self.secret_file is not None:
            path = Path(self.secret_file)
            if not path.is_file():
                raise UserError(f"watermark secret file not found: {path}")
            data = path.read_bytes()
            if not data.strip():
                raise UserError(f"watermark secret file {path} is empty")
            return data
        env = os.environ.get(SECRET_ENV)
        return env.encode() if env else None

    def validate(self) -> None:
        """Check the options before anything is written."""
        if (self.sign_key is None) != (self.sign_cert is None):
            raise UserError("C2PA signing needs both --sign-key and --sign-cert")
        if not 0.05 <= self.strength <= 5:
            raise UserError(f"watermark strength must be in [0.05, 5], got {self.strength}")
        for p in (self.sign_key, self.sign_cert):
            if p is not None and not Path(p).is_file():
                raise UserError(f"C2PA signing file not found: {p}")


class Marker:
    """Writes one generator's images with watermark, metadata and optional C2PA manifest.

    Args:
        generator: a name for the generator (architecture, run or export name).
        weights_sha256: sha256 hex of its weights (fingerprint in the mark and metadata).
        options: ``ProvenanceOptions``.
    """

    def __init__(
        self, generator: str, weights_sha256: str, options: ProvenanceOptions | None = None
    ) -> None:
        self.options = options or ProvenanceOptions()
        self.options.validate()
        self.generator = generator
        self.weights_sha256 = weights_sha256
        secret = self.options.secret() if self.options.watermark else None
        self.payload: Payload | None = (
            make_payload(weights_sha256, secret) if self.options.watermark else None
        )
        self.too_small = 0  # images left unmarked because they are under MIN_SIDE px
        self.signer = None
        if self.options.sign_key is not None:
            from deepfake_lab.provenance.c2pa import SignerConfig

            self.signer = SignerConfig(
                Path(self.options.sign_key),
                Path(self.options.sign_cert),  # type: ignore[arg-type]
                self.options.sign_algorithm,
            )

    def summary(self) -> dict[str, Any]:
        """What this marker does, for run manifests (``generate.json``)."""
        return {
            "watermark": self.options.watermark,
            "opted_out": None if self.options.watermark else self.options.opt_out_reason,
            "payload": self.payload.to_dict() if self.payload else None,
            "strength": self.options.strength if self.options.watermark else None,
            "metadata": "PNG text + XMP (IPTC DigitalSourceType trainedAlgorithmicMedia)",
            "c2pa_signed": self.signer is not None,
            "unmarked_too_small": self.too_small,
        }

    def can_mark(self, image: np.ndarray) -> bool:
        """Whether ``image`` gets the watermark (on, and at least ``MIN_SIDE`` px)."""
        return self.payload is not None and min(image.shape[:2]) >= MIN_SIDE

    def mark(self, image: np.ndarray) -> np.ndarray:
        """The watermarked image; unchanged with ``watermark=False`` or below ``MIN_SIDE``
        px (``too_small`` counts those, and their metadata says ``watermarked: false``)."""
        if not self.can_mark(image):
            if self.payload is not None:
                self.too_small += 1
            return image
        return embed(image, self.payload, self.options.strength)

    def write(
        self, path: str | Path, image: np.ndarray, seed: int | None = None, **extra: Any
    ) -> Path:
        """Mark ``image`` (uint8 (H, W, 3)) and write it to ``path`` as PNG, atomically."""
        path = Path(path)
        info = ProvenanceInfo(
            generator=self.generator,
            weights_sha256=self.weights_sha256,
            seed=seed,
            watermarked=self.can_mark(image),
            extra=extra,
        )
        atomic_write_bytes(path, encode_png_with_provenance(self.mark(image), info))
        if self.signer is not None:
            from deepfake_lab.provenance.c2pa import sign_image

            sign_image(path, path, info, self.signer)
        return path


#: Samples that train or measure a detector are written unmarked (a detector must learn the
#: generator's artefacts, not our watermark); this says so in their ``generate.json``.
DETECTOR_DATA = ProvenanceOptions(
    watermark=False,
    opt_out_reason="detector data: unmarked so that a detector learns the generator's "
    "artefacts, not the watermark",
)
