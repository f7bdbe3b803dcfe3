"""The invisible watermark: a 64-bit payload, BCH-coded, embedded by dither modulation in the
DCT of the image's luma on a canonical 64x64 grid.

Why this scheme (``bench/watermark.py`` has the numbers): ``invisible-watermark`` refuses
images under 256x256 and its ``dwtDct`` method loses bits even untouched at 256 px; our faces
are 64-256 px. Plain spread spectrum (correlation) needs PSNR far below 38 dB at 64 px,
because the face itself is the noise. Quantisation (dither modulation, Chen & Wornell 2001)
cancels the host instead, so 120 coded bits fit at 64 px.

How:

- Canonical grid: the luma is area-resized to 64x64 whatever the image size, so a mark made
  at 256 px is read after a resize to 128 or 32 px; the mark is made at 64x64 and up-sampled
  (bicubic) to the image, added equally to R, G and B (luma only, no colour shift).
- Only the central 48x48 window carries the mark, in its DCT band ``3 <= u+v <= 30``,
  ``u, v <= 12`` (frequencies that survive a 0.5x resize of a 64 px image and JPEG), so that
  a crop of up to 1/8 on each side leaves the marked window whole.
- 120 projections of the band (disjoint key-seeded coefficient sets with random signs) are
  divided by the band's RMS (so brightness scaling leaves them alone) and quantised to the
  lattice of their bit: ``strength * (Z + bit/2 + dither)``. Embedding iterates to absorb
  rounding and clipping.
- Payload (8 bytes): magic 0xD7, version/flags, 4 bytes of the generator weights' sha256,
  and a 16-bit HMAC-SHA256 code under the owner's secret (zero without one); BCH(t=8, m=7)
  adds 56 parity bits and corrects up to 8 bit errors.
- Reading: the direct decode first; if it fails, a crop search over scale (0.80-0.99) and
  offset (0.5 px steps, then refined to 0.125 px) ranks alignments by how close the
  projections sit to a lattice, and BCH-decodes the best few.

The patterns come from a public seed: any copy of the tool can read any mark (that is the
point: provenance); only the HMAC code needs the owner's secret.

False positives: an unmarked image gives near-random bits; BCH accepts a random 120-bit
word with probability ``V(120, 8) / 2**56`` (~1.3e-5), and the 12 fixed magic/version bits
must match too (``2**-12``), for each decode attempted (at most 1 + ``SEARCH_DECODES``):
``false_positive_bound()`` gives the product, 2.8e-8 per image. The threshold comes from the
code, not from any image set.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from scipy import sparse
from scipy.fft import idctn

from deepfake_lab.color import luma

CANON = 64  # canonical grid (px)
WIN_OFF, WIN = 8, 48  # the marked window inside it
BAND = {"min_sum": 3, "max_sum": 30, "max_freq": 12}
N_BITS = 120  # 64 data + 56 BCH parity
BCH_T, BCH_M = 8, 7
MAGIC, VERSION = 0xD7, 1
FLAG_KEYED = 0x1
DEFAULT_STRENGTH = 0.4  # lattice step / band RMS: ~39 dB PSNR (bench/watermark.py)
MIN_SIDE = 32  # smallest markable side (px): the band needs 0.3 cycles/px at 32 px
RMS_FLOOR = 24.0  # band RMS floor (luma DCT units on the canonical grid)
SEARCH_SCALES = np.round(np.arange(0.80, 0.995, 0.01), 4)
SEARCH_REFINE = 32  # coarse alignments refined (cost only)
SEARCH_DECODES = 8  # BCH attempts after the crop search (counted in the FP bound)
_SEED = int.from_bytes(hashlib.sha256(b"deepfake-lab watermark v1").digest()[:8], "big")


@dataclass(frozen=True)
class _Code:
    """The key-seeded projection matrix and dithers (the same in every copy of the tool)."""

    proj: sparse.csr_array  # (N_BITS, WIN*WIN): unit-norm projections of the flat DCT
    band: np.ndarray  # flat indices of the band coefficients
    dither: np.ndarray  # (N_BITS,) in [0, 1)
    # Reading needs only the low F x F corner of the DCT (F = max_freq + 1): the same
    # projections on that corner, and its orthonormal DCT-II rows, so that a batch of
    # windows costs two small matmuls instead of full 2-D DCTs.
    basis: np.ndarray  # (F, WIN)
    proj_low: np.ndarray  # (N_BITS, F*F)
    band_low: np.ndarray  # flat indices of the band in the F x F corner


@lru_cache(maxsize=1)
def _code() -> _Code:
    u, v = np.meshgrid(np.arange(WIN), np.arange(WIN), indexing="ij")
    s = u + v
    mask = (s >= BAND["min_sum"]) & (s <= BAND["max_sum"])
    mask &= (u <= BAND["max_freq"]) & (v <= BAND["max_freq"])
    band = np.flatnonzero(mask.ravel())
    rng = np.random.default_rng(_SEED)
    groups = np.array_split(band[rng.permutation(len(band))], N_BITS)
    proj = np.zeros((N_BITS, WIN * WIN))
    for k, g in enumerate(groups):
        proj[k, g] = rng.choice([-1.0, 1.0], len(g)) / math.sqrt(len(g))
    f = BAND["max_freq"] + 1
    n = np.arange(WIN)
    basis = np.sqrt(2 / WIN) * np.cos(np.pi * (2 * n[None] + 1) * np.arange(f)[:, None] / (2 * WIN))
    basis[0] /= np.sqrt(2)
    low = (u[:f, :f] * WIN + v[:f, :f]).ravel()  # full-DCT flat index of each corner entry
    band_low = np.flatnonzero(mask[:f, :f].ravel())
    return _Code(sparse.csr_array(proj), band, rng.random(N_BITS), basis, proj[:, low], band_low)


@lru_cache(maxsize=1)
def _bch() -> Any:
    import bchlib

    return bchlib.BCH(t=BCH_T, m=BCH_M)


# -- payload ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Payload:
    """What a mark says.

    Attributes:
        fingerprint: first 4 bytes of the generator weights' sha256, as 8 hex digits.
        keyed: whether ``code`` is an HMAC under an owner's secret.
        code: the 16-bit HMAC code (0 when not keyed).
        version: payload format version.
    """

    fingerprint: str
    keyed: bool = False
    code: int = 0
    version: int = VERSION

    def to_bytes(self) -> bytes:
        head = bytes([MAGIC, (self.version << 4) | (FLAG_KEYED if self.keyed else 0)])
        return head + bytes.fromhex(self.fingerprint) + self.code.to_bytes(2, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> Payload | None:
        """The payload, or None when the magic or version does not match."""
        if len(data) != 8 or data[0] != MAGIC or data[1] >> 4 != VERSION:
            return None
        return cls(data[2:6].hex(), bool(data[1] & FLAG_KEYED), int.from_bytes(data[6:], "big"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": "deepfake-lab",
            "version": self.version,
            "fingerprint": self.fingerprint,
            "keyed": self.keyed,
            "code": f"{self.code:04x}",
        }


def _hmac_code(secret: bytes, fingerprint: str) -> int:
    msg = bytes([MAGIC, VERSION]) + bytes.fromhex(fingerprint)
    return int.from_bytes(hmac.new(secret, msg, hashlib.sha256).digest()[:2], "big")


def make_payload(weights_sha256: str, secret: bytes | None = None) -> Payload:
    """The payload for a generator (its weights' sha256 hex) and an optional owner secret."""
    fp = weights_sha256[:8].lower()
    bytes.fromhex(fp)  # raises on a non-hex fingerprint
    if secret is None:
        return Payload(fp)
    return Payload(fp, keyed=True, code=_hmac_code(secret, fp))


def code_matches(payload: Payload, secret: bytes) -> bool:
    """Whether a keyed payload's code was made with ``secret`` (1 in 65536 by chance)."""
    return payload.keyed and hmac.compare_digest(
        payload.code.to_bytes(2, "big"), _hmac_code(secret, payload.fingerprint).to_bytes(2, "big")
    )


def coded_bits(payload: Payload | bytes) -> np.ndarray:
    """The N_BITS (0/1) a payload is embedded as: its 64 bits and 56 BCH parity bits."""
    data = payload.to_bytes() if isinstance(payload, Payload) else bytes(payload)
    return _bits(data).astype(np.uint8)


def _bits(payload: bytes) -> np.ndarray:
    raw = payload + bytes(_bch().encode(payload))
    return np.unpackbits(np.frombuffer(raw, np.uint8))[:N_BITS].astype(np.float64)


def false_positive_bound(decodes: int = 1 + SEARCH_DECODES) -> float:
    """Probability that an unmarked image reads as marked, for ``decodes`` BCH attempts on
    independent uniform bits: ``decodes * V(N_BITS, t) / 2**(parity) * 2**-12``."""
    ball = sum(math.comb(N_BITS, i) for i in range(BCH_T + 1))
    return decodes * ball / 2.0 ** (BCH_T * BCH_M) * 2.0**-12


# -- embedding -------------------------------------------------------------------------------
def _canonical(y: np.ndarray) -> np.ndarray:
    if y.shape == (CANON, CANON):
        return y
    return cv2.resize(y, (CANON, CANON), interpolation=cv2.INTER_AREA)


def _band_coefs(wins: np.ndarray) -> np.ndarray:
    """DCT-II (orthonormal) coefficients of the low ``F x F`` corner, flattened: (K, F*F)
    for windows (K, WIN, WIN); equal to ``dctn(win, norm="ortho")[:F, :F]``."""
    a = _code().basis
    return (a @ wins @ a.T).reshape(len(wins), -1)


def _normalised(coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projections (K, N_BITS) divided by the band RMS, and the RMS (K,)."""
    c = _code()
    # The floor keeps flat images (an untrained generator's grey) markable: real faces have
    # a band RMS of 50-190 here, so it never touches them.
    rms = np.maximum(np.sqrt(np.mean(coef[:, c.band_low] ** 2, axis=1)), RMS_FLOOR)
    return coef @ c.proj_low.T / rms[:, None], rms


def _projections(win: np.ndarray) -> tuple[np.ndarray, float]:
    """Normalised projections (N_BITS,) of a 48x48 window, and the band RMS."""
    p, rms = _normalised(_band_coefs(win[None]))
    return p[0], float(rms[0])


def embed(
    image: np.ndarray, payload: Payload | bytes, strength: float = DEFAULT_STRENGTH
) -> np.ndarray:
    """Mark an image.

    Args:
        image: uint8 RGB ``(H, W, 3)``, at least ``MIN_SIDE`` (32) px on each side: below
            that the band's upper frequencies do not exist in the image.
        payload: what to carry (8 bytes).
        strength: lattice step relative to the band RMS; higher is more robust and more
            visible (0.4 gives ~39 dB PSNR on faces).

    Returns:
        The marked uint8 image, same shape.
    """
    data = payload.to_bytes() if isinstance(payload, Payload) else bytes(payload)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(
            f"image too small to mark: {image.shape[1]}x{image.shape[0]} (< {MIN_SIDE} px)"
        )
    c = _code()
    h, w = image.shape[:2]
    bits = _bits(data)
    out = image.astype(np.float64)
    for _ in range(6):  # re-measure after rounding and clipping, correct what moved
        win = _canonical(luma(np.clip(np.rint(out), 0, 255)))[
            WIN_OFF : WIN_OFF + WIN, WIN_OFF : WIN_OFF + WIN
        ]
        p, rms = _projections(win)
        target = strength * (np.round(p / strength - bits / 2 - c.dither) + bits / 2 + c.dither)
        step = (target - p) * rms
        if np.abs(step).max() < 0.05 * strength * rms:
            break
        delta = np.zeros((CANON, CANON))
        delta[WIN_OFF : WIN_OFF + WIN, WIN_OFF : WIN_OFF + WIN] = idctn(
            (c.proj.T @ step).reshape(WIN, WIN), norm="ortho"
        )
        if (h, w) != (CANON, CANON):
            # Bicubic up, area down (no aliasing of the pattern into other frequencies).
            interp = cv2.INTER_CUBIC if h * w > CANON * CANON else cv2.INTER_AREA
            delta = cv2.resize(delta, (w, h), interpolation=interp)
        out += delta[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# -- reading ---------------------------------------------------------------------------------
@dataclass
class Reading:
    """What ``extract`` found.

    Attributes:
        found: a valid payload was decoded (magic, version and BCH all agree).
        payload: the decoded payload, or None.
        bit_errors: bits BCH corrected (of ``budget``); None when nothing decoded.
        budget: the most bit errors the code corrects.
        decodes: BCH decodes attempted (enters the false-positive bound).
        aligned: "direct" or "search" (found after re-aligning a crop).
        bits: the raw hard bits (N_BITS,) before error correction, of the decode that
            succeeded (else of the direct read): for bit-accuracy measurements.
    """

    found: bool
    payload: Payload | None = None
    bit_errors: int | None = None
    budget: int = BCH_T
    decodes: int = 0
    aligned: str | None = None
    bits: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "found": self.found,
            "payload": self.payload.to_dict() if self.payload else None,
            "bit_errors": self.bit_errors,
            "budget": self.budget,
            "decodes": self.decodes,
            "aligned": self.aligned,
            "false_positive_bound": false_positive_bound(max(1, self.decodes)),
        }


def _hard_bits(win: np.ndarray, strength: float) -> np.ndarray:
    f = _projections(win)[0] / strength - _code().dither
    return (np.abs(f - np.round(f)) > 0.25).astype(np.uint8)  # nearer the odd coset: 1


def _decode_bits(bits: np.ndarray) -> tuple[Payload, int] | None:
    raw = np.packbits(np.concatenate([bits, np.zeros(8 * 15 - N_BITS, np.uint8)])).tobytes()
    data, ecc = bytearray(raw[:8]), bytearray(raw[8:15])
    bch = _bch()
    nerr = bch.decode(data, ecc)
    if nerr < 0:
        return None
    bch.correct(data, ecc)
    payload = Payload.from_bytes(bytes(data))
    return (payload, int(nerr)) if payload else None


def _misfits(wins: np.ndarray, strength: float) -> np.ndarray:
    """Mean distance of each window's projections to the nearest lattice point (either
    bit), in steps: ~0 when aligned with a mark, ~0.125 for unrelated content.

    Args:
        wins: (K, WIN, WIN) luma windows.

    Returns:
        (K,) distances.
    """
    f = _normalised(_band_coefs(wins))[0] / strength - _code().dither
    return np.mean(np.abs(f - np.round(2 * f) / 2), axis=1)


def _upsampled(sub: np.ndarray, q: int) -> tuple[np.ndarray, int]:
    """``sub`` reflect-padded by ``WIN_OFF + 1`` px and linearly up-sampled by ``q`` so that
    index ``k`` sits at padded coordinate ``k / q`` exactly; returns it and the pad."""
    pad = WIN_OFF + 1
    p = cv2.copyMakeBorder(sub, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)

    def along(a: np.ndarray, axis: int) -> np.ndarray:
        n = a.shape[axis]
        t = np.arange((n - 1) * q + 1) / q
        i0 = np.minimum(t.astype(int), n - 2)
        frac = t - i0
        lo, hi = np.take(a, i0, axis=axis), np.take(a, i0 + 1, axis=axis)
        shape = [1, 1]
        shape[axis] = -1
        return lo + (hi - lo) * frac.reshape(shape)

    return along(along(p, 0), 1), pad


def _windows_at_offsets(
    up: np.ndarray, pad: int, q: int, ox: np.ndarray, oy: np.ndarray
) -> np.ndarray:
    """Windows (len(oy) * len(ox), WIN, WIN) for every crop offset pair, the crop placed at
    ``(ox, oy)`` canonical px (multiples of ``1/q``), gathered from ``_upsampled`` output:
    linear interpolation at those offsets (reflected borders), in one gather."""
    steps = q * np.arange(WIN)
    rows = np.rint(q * (pad + WIN_OFF - oy)).astype(int)[:, None] + steps
    cols = np.rint(q * (pad + WIN_OFF - ox)).astype(int)[:, None] + steps
    return up[rows[:, None, :, None], cols[None, :, None, :]].reshape(-1, WIN, WIN)


def _at_scale(y: np.ndarray, cw: float, ch: float) -> np.ndarray:
    """``y`` area-resampled so that it spans exactly ``cw x ch`` canonical px: OpenCV maps
    with the given ``fx``/``fy`` (pixel centres land on canonical centres) and rounds only
    the output size."""
    fx, fy = cw / y.shape[1], ch / y.shape[0]
    return cv2.resize(y, None, fx=fx, fy=fy, interpolation=cv2.INTER_AREA)


def _search(y: np.ndarray, strength: float) -> list[np.ndarray]:
    """Windows for the best crop alignments, best first: a coarse grid over scale (1 %
    steps) and half-pixel offsets, then a local refinement (0.3 % scale, 0.125 px offset
    steps) of the ``SEARCH_DECODES`` best."""
    h, w = y.shape
    side = max(h, w)  # originals are square: the crop's longer side is ``s`` of theirs

    def spans(s: float) -> tuple[float, float]:
        return CANON * s * w / side, CANON * s * h / side

    coarse: list[tuple[float, float, float, float]] = []
    for s in SEARCH_SCALES:
        cw, ch = spans(float(s))
        up, pad = _upsampled(_at_scale(y, cw, ch), 2)
        # Half a pixel of slack each way: the true crop size lies between grid scales.
        ox = np.arange(-0.5, CANON - cw + 0.5 + 1e-6, 0.5)
        oy = np.arange(-0.5, CANON - ch + 0.5 + 1e-6, 0.5)
        d = _misfits(_windows_at_offsets(up, pad, 2, ox, oy), strength)
        gy, gx = np.meshgrid(oy, ox, indexing="ij")
        gx, gy = gx.ravel(), gy.ravel()
        for i in np.argsort(d)[:SEARCH_REFINE]:
            coarse.append((float(d[i]), float(s), float(gx[i]), float(gy[i])))
    coarse.sort(key=lambda t: t[0])
    ups: dict[float, tuple[np.ndarray, int]] = {}
    fine = np.arange(-0.375, 0.376, 0.125)
    refined: list[tuple[float, np.ndarray]] = []
    for _, s0, ox0, oy0 in coarse[:SEARCH_REFINE]:
        best: tuple[float, np.ndarray] | None = None
        for s in np.round(s0 + np.arange(-0.006, 0.0061, 0.003), 4):
            if s not in ups:
                ups[s] = _upsampled(_at_scale(y, *spans(float(s))), 8)
            wins = _windows_at_offsets(*ups[s], 8, ox0 + fine, oy0 + fine)
            d = _misfits(wins, strength)
            k = int(np.argmin(d))
            if best is None or d[k] < best[0]:
                best = (float(d[k]), wins[k])
        assert best is not None
        refined.append(best)
    refined.sort(key=lambda t: t[0])
    return [win for _, win in refined[:SEARCH_DECODES]]


def extract(image: np.ndarray, search: bool = True, strength: float = DEFAULT_STRENGTH) -> Reading:
    """Read the mark of an image.

    Args:
        image: uint8 RGB ``(H, W, 3)`` (any size; grey images as ``(H, W)`` too).
        search: when the direct read fails, search crop alignments (about 0.3 s per image);
            False reads only untouched, re-encoded, resized or re-toned images (~1 ms).
        strength: the lattice step the mark was made with (the default unless changed).

    Returns:
        A ``Reading``; ``found`` is False for unmarked images.
    """
    y = luma(image) if image.ndim == 3 else image.astype(np.float64)
    if min(y.shape) < 8:
        return Reading(False)
    win = _canonical(y)[WIN_OFF : WIN_OFF + WIN, WIN_OFF : WIN_OFF + WIN]
    bits = _hard_bits(win, strength)
    hit = _decode_bits(bits)
    if hit:
        return Reading(True, hit[0], hit[1], decodes=1, aligned="direct", bits=bits)
    if not search:
        return Reading(False, decodes=1, bits=bits)
    decodes = 1
    for win in _search(y, strength):
        decodes += 1
        found = _hard_bits(win, strength)
        hit = _decode_bits(found)
        if hit:
            return Reading(True, hit[0], hit[1], decodes=decodes, aligned="search", bits=found)
    return Reading(False, decodes=decodes, bits=bits)
