"""Image-space degradations for detector training and the robustness sweep.

Representation: every function takes and returns one **uint8 (H, W, 3) RGB numpy image**
(C-contiguous), the form images have before they become tensors. Integers are the natural
form here: JPEG re-compression needs real 8-bit pixels and bytes, and rounding to 8 bits after
every op is what a real processing chain does. Outputs are new arrays with the input's shape
and dtype; inputs are never modified. :func:`map_images` applies any of them to a uint8
(N, 3, H, W) tensor.

Definitions:

* ``gaussian_blur``: OpenCV Gaussian, kernel from sigma (about 6 sigma wide), mirrored edges.
* ``jpeg``: PIL encode + decode at ``quality`` with PIL's default 4:2:0 chroma subsampling.
* ``h264``: one intra frame through libx264 (yuv420p) at constant rate factor ``crf`` and
  back: what a video platform or a broadcast encoder leaves on a face (4:2:0 chroma, block
  transform, deblocking). FaceForensics++ "c23" is CRF 23.
* ``resize``: down by ``scale`` with area averaging (an anti-aliased downscale, as a
  re-upload at lower resolution would be), then back up to the original size with
  bilinear interpolation, so detail is lost and the shape kept.
* ``color_jitter``: brightness, contrast, saturation factors in ``[1 - a, 1 + a]``
  (torchvision's definitions), applied in that order.
* ``gaussian_noise``: additive noise with ``sigma`` in 8-bit levels (``noise5`` = 5/255).

:class:`RobustAugment` draws every random number from a ``numpy.random.Generator`` passed in,
a fixed count per image, so the same generator state gives the same images. To resume, save
``rng.bit_generator.state`` (a plain dict) in the checkpoint and assign it back.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import cached_property, partial
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from deepfake_lab.color import luma
from deepfake_lab.errors import UserError

ImageFn = Callable[[np.ndarray], np.ndarray]

# Luma weights of ITU-R BT.601, as PIL and torchvision use for grayscale.


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` px (``<= 0``: a copy)."""
    if sigma <= 0:
        return img.copy()
    return cv2.GaussianBlur(img, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma))


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG at ``quality`` (1-100) with PIL and decode again."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(round(quality)))
    buf.seek(0)
    with Image.open(buf) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.uint8).copy()


_NO_X264 = (
    "this PyAV has no libx264 encoder, which the H.264 round trip needs; install the PyPI "
    "wheel of av (it ships libx264) or turn the H.264 op off"
)


def check_h264() -> None:
    """Raise a one-line :class:`UserError` unless PyAV can encode H.264 (libx264)."""
    import av

    try:
        av.codec.Codec("libx264", "w")
    except av.codec.codec.UnknownCodecError:
        raise UserError(_NO_X264) from None


def h264(img: np.ndarray, crf: int) -> np.ndarray:
    """Encode as one H.264 intra frame (libx264, yuv420p, CRF ``crf`` in 0-51, one thread so
    the bytes never depend on the machine) with PyAV and decode again. Odd sides are padded
    by edge replication to the 4:2:0 grid and cropped back.

    Raises:
        UserError: PyAV's FFmpeg has no libx264 encoder.
    """
    import av  # here, not at the top: only this op needs it

    height, width = img.shape[:2]
    padded = np.pad(img, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    # Codec contexts alone: one frame needs no container to mux and demux.
    try:
        encoder = av.CodecContext.create("libx264", "w")
    except av.codec.codec.UnknownCodecError:
        raise UserError(_NO_X264) from None
    encoder.width, encoder.height = padded.shape[1], padded.shape[0]
    encoder.pix_fmt, encoder.time_base = "yuv420p", Fraction(1, 25)
    encoder.options = {"crf": str(int(crf)), "threads": "1"}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(padded), format="rgb24")
    decoder = av.CodecContext.create("h264", "r")
    packets = [*encoder.encode(frame), *encoder.encode(None)]
    decoded = [f for packet in [*packets, None] for f in decoder.decode(packet)]
    return np.ascontiguousarray(decoded[0].to_ndarray(format="rgb24")[:height, :width])


def resize(img: np.ndarray, scale: float) -> np.ndarray:
    """Down by ``scale`` in (0, 1] (area), then up to the original size (bilinear)."""
    height, width = img.shape[:2]
    small = (max(1, round(width * scale)), max(1, round(height * scale)))  # cv2 wants (w, h)
    if small == (width, height):
        return img.copy()
    down = cv2.resize(img, small, interpolation=cv2.INTER_AREA)
    return cv2.resize(down, (width, height), interpolation=cv2.INTER_LINEAR)


def hflip(img: np.ndarray) -> np.ndarray:
    """Mirror left-right."""
    return np.ascontiguousarray(img[:, ::-1])


def color_jitter(
    img: np.ndarray,
    brightness: float,
    contrast: float,
    saturation: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Random brightness, contrast and saturation, each factor uniform in ``[1 - a, 1 + a]``.

    Always draws three numbers from ``rng``, whatever the amounts.
    """
    fb, fc, fs = (
        rng.uniform(max(0.0, 1.0 - a), 1.0 + a) for a in (brightness, contrast, saturation)
    )
    x = img.astype(np.float32) * fb
    x = np.clip(x, 0, 255)
    x = fc * x + (1.0 - fc) * float(luma(x, np.float32).mean())
    x = np.clip(x, 0, 255)
    x = fs * x + (1.0 - fs) * luma(x, np.float32)[..., None]
    return _to_uint8(x)


def gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add N(0, sigma^2) noise, ``sigma`` in 8-bit levels, then round and clip."""
    noise = rng.standard_normal(img.shape, dtype=np.float32) * float(sigma)
    return _to_uint8(img.astype(np.float32) + noise)


#: One generator for a whole batch, or one per image (their k-th for image k).
ImageRngs = np.random.Generator | Sequence[np.random.Generator]


def augment_images(
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray],
    images: torch.Tensor,
    rng: ImageRngs | None,
) -> torch.Tensor:
    """``augment(image, generator)`` on every image of a uint8 (N, 3, H, W) batch.

    Args:
        rng: one generator drawn from in turn, or one per image. Per-image generators make
            an image's augmentation independent of the rest of the batch: what data-parallel
            training needs to match a one-process run.

    Raises:
        ValueError: no generator, or not one per image.
    """
    if rng is None:
        raise ValueError("augmentation needs rng, the generator it draws from")
    gens = [rng] * len(images) if isinstance(rng, np.random.Generator) else list(rng)
    if len(gens) != len(images):
        raise ValueError(f"{len(gens)} generators for {len(images)} images")
    it = iter(gens)  # map_images calls fn once per image, in order
    return map_images(lambda img: augment(img, next(it)), images)


def map_images(fn: ImageFn, images: torch.Tensor) -> torch.Tensor:
    """Apply a per-image function to a uint8 (N, 3, H, W) tensor; returns the same layout."""
    hwc = images.permute(0, 2, 3, 1).cpu().numpy()
    if len(hwc) == 0:
        return images.clone()
    out = np.stack([fn(np.ascontiguousarray(img)) for img in hwc])
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True)
class OpRange:
    """One random op: applied with probability ``p``, parameter uniform in [low, high]."""

    p: float
    low: float
    high: float


@dataclass(frozen=True)
class ColorRange:
    """Colour jitter: applied with probability ``p``, with these jitter amounts."""

    p: float = 0.2
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2


# Each op's "no change" value: ``strength`` pulls ranges toward it (< 1) or away (> 1).
_IDENTITY = {"blur": 0.0, "jpeg": 100.0, "resize": 1.0, "noise": 0.0}
# Allowed parameter ranges, also the clip for strength-scaled ones (JPEG below q10 or a 16x
# downscale is destruction, not a degradation a detector meets in the wild).
_DOMAIN = {"blur": (0.0, 10.0), "jpeg": (10.0, 100.0), "resize": (1 / 16, 1.0), "noise": (0, 50)}


@dataclass(frozen=True)
class RobustAugment:
    """Random degradations for detector training, in a fixed order.

    Order: flip, colour jitter, blur, resize, noise, JPEG (compression last, as when an
    edited image is saved). Defaults follow the issue: blur p=0.1 sigma in [0.1, 3], JPEG
    p=0.1 quality in [30, 100], resize p=0.1 scale in [0.5, 1], flip p=0.5, colour p=0.2;
    noise is off (p=0) unless configured.

    ``strength`` scales every probability (capped at 1) and the distance of every range from
    the op's no-change value (sigma 0, quality 100, scale 1, amount 0); 0 leaves only the
    flip, which is a symmetry, not a degradation, and is not scaled.

    Call it as ``aug(img, rng)`` with uint8 (H, W, 3) and a ``numpy.random.Generator``; each
    call draws exactly 13 numbers from ``rng`` (plus none elsewhere), so equal generator
    states give equal outputs.
    """

    blur: OpRange = OpRange(0.1, 0.1, 3.0)
    jpeg: OpRange = OpRange(0.1, 30.0, 100.0)
    resize: OpRange = OpRange(0.1, 0.5, 1.0)
    flip: float = 0.5
    color: ColorRange = ColorRange()
    noise: OpRange = OpRange(0.0, 0.0, 5.0)
    strength: float = 1.0

    def __post_init__(self) -> None:
        if not (self.strength >= 0):
            raise UserError(f"augmentation strength must be >= 0, got {self.strength}")
        if not 0.0 <= self.flip <= 1.0:
            raise UserError(f"augment flip probability must be in [0, 1], got {self.flip}")
        if not 0.0 <= self.color.p <= 1.0:
            raise UserError(f"augment color.p must be in [0, 1], got {self.color.p}")
        for name in _IDENTITY:
            op: OpRange = getattr(self, name)
            lo, hi = _DOMAIN[name]
            if not (0.0 <= op.p <= 1.0 and lo <= op.low <= op.high <= hi):
                raise UserError(
                    f"augment {name}: need p in [0, 1] and {lo:g} <= low <= high <= {hi:g}, "
                    f"got p={op.p}, range [{op.low}, {op.high}]"
                )

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> RobustAugment:
        """Build from a config mapping, e.g.
        ``{"blur": {"p": 0.2, "range": [0.1, 2]}, "flip": 0.5, "color": {"p": 0.1},
        "strength": 1.5}``; keys left out keep their defaults.

        Raises:
            UserError: unknown keys or values out of range.
        """
        known = {"blur", "jpeg", "resize", "noise", "flip", "color", "strength"}
        unknown = set(cfg) - known
        if unknown:
            raise UserError(
                f"unknown augment option(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        base = cls()
        kwargs: dict[str, Any] = {}
        for name in _IDENTITY:
            if name in cfg:
                op, old = dict(cfg[name]), getattr(base, name)
                low, high = op.pop("range", (old.low, old.high))
                kwargs[name] = OpRange(float(op.pop("p", old.p)), float(low), float(high))
                if op:
                    raise UserError(f"augment {name}: unknown key(s) {', '.join(sorted(op))}")
        if "flip" in cfg:
            flip = cfg["flip"]
            kwargs["flip"] = float(flip["p"] if isinstance(flip, Mapping) else flip)
        if "color" in cfg:
            try:
                kwargs["color"] = ColorRange(**{k: float(v) for k, v in cfg["color"].items()})
            except TypeError as exc:
                raise UserError(f"augment color: {exc}") from None
        if "strength" in cfg:
            kwargs["strength"] = float(cfg["strength"])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data (for run configs and logs)."""
        out = asdict(self)
        for name in _IDENTITY:
            op = out[name]
            out[name] = {"p": op["p"], "range": [op["low"], op["high"]]}
        return out

    @cached_property
    def effective(self) -> dict[str, tuple[float, float, float]]:
        """``name -> (p, low, high)`` for blur, jpeg, resize and noise after ``strength``."""
        s = self.strength
        out = {}
        for name, ident in _IDENTITY.items():
            op: OpRange = getattr(self, name)
            lo, hi = _DOMAIN[name]
            a = float(np.clip(ident + (op.low - ident) * s, lo, hi))
            b = float(np.clip(ident + (op.high - ident) * s, lo, hi))
            out[name] = (min(1.0, op.p * s), min(a, b), max(a, b))
        return out

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One augmented copy of a uint8 (H, W, 3) image."""
        e, s = self.effective, self.strength
        # A fixed number of draws per image, whatever fires: the stream stays aligned, and
        # changing one op's probability does not change the others' decisions.
        fire = rng.random(6)
        pick = rng.random(4)
        sub = np.random.default_rng(rng.integers(0, 2**63 - 1, size=3))
        out = img
        if fire[0] < self.flip:
            out = hflip(out)
        if fire[1] < min(1.0, self.color.p * s):
            c = self.color
            out = color_jitter(out, c.brightness * s, c.contrast * s, c.saturation * s, sub)
        for k, name in enumerate(("blur", "resize", "noise", "jpeg"), start=2):
            p, lo, hi = e[name]
            if fire[k] < p:
                value = lo + (hi - lo) * pick[k - 2]
                if name == "blur":
                    out = gaussian_blur(out, value)
                elif name == "resize":
                    out = resize(out, value)
                elif name == "noise":
                    out = gaussian_noise(out, value, sub)
                else:
                    out = jpeg(out, int(round(value)))
        return out.copy() if out is img else out

    def move(self, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Where the same draws move pixels: the flip only, applied to ``mask`` (H, W)
        float32. Draws exactly what :meth:`__call__` draws, so from a copy of the state the
        image was augmented with, a blend mask follows its image."""
        fire = rng.random(6)
        rng.random(4)
        rng.integers(0, 2**63 - 1, size=3)
        return np.ascontiguousarray(mask[:, ::-1]) if fire[0] < self.flip else mask

    def batch(self, images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Augment a uint8 (N, 3, H, W) tensor image by image, in order."""
        return map_images(lambda img: self(img, rng), images)


def _seeded_noise(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    # Seeded by the image's own bytes: repeatable, yet a different noise field per image
    # (one shared field would be a fixed pattern a detector could partly learn around).
    rng = np.random.default_rng([seed, zlib.crc32(img.tobytes())])
    return gaussian_noise(img, sigma, rng)


def parse_reencode(spec: str | None) -> Callable[[np.ndarray], np.ndarray] | None:
    """``"jpeg95"`` -> a JPEG q95 round trip; ``None``, ``"none"``, ``"png"`` -> None.

    Raises:
        UserError: any other value.
    """
    if spec is None or spec.lower() in ("", "none", "png"):
        return None
    name = spec.lower()
    if name.startswith("jpeg") and name[4:].isdigit() and 1 <= int(name[4:]) <= 100:
        quality = int(name[4:])
        return lambda img: jpeg(img, quality)
    raise UserError(f"unknown re-encoding {spec!r}; use jpegNN (NN in 1-100, e.g. jpeg95) or none")


def _reshared(img: np.ndarray) -> np.ndarray:
    # A photo passed on through a messenger or social site: scaled down (and viewed back at
    # its size), then re-encoded as JPEG.
    return jpeg(resize(img, 0.5), 75)


#: Deterministic perturbations for the robustness sweep, uint8 (H, W, 3) -> same.
PERTURBATIONS: dict[str, ImageFn] = {
    "jpeg95": partial(jpeg, quality=95),
    "jpeg75": partial(jpeg, quality=75),
    "jpeg50": partial(jpeg, quality=50),
    "resize0.5": partial(resize, scale=0.5),
    "resize0.75": partial(resize, scale=0.75),
    "blur1": partial(gaussian_blur, sigma=1.0),
    "noise5": partial(_seeded_noise, sigma=5.0),
    "resize0.5+jpeg75": _reshared,
    # A face in a streamed or broadcast video (x264's default rate factor).
    "h264crf23": partial(h264, crf=23),
}


def get_perturbation(name: str) -> ImageFn:
    """The sweep perturbation called ``name``.

    Raises:
        UserError: unknown name (the message lists the known ones).
    """
    try:
        return PERTURBATIONS[name]
    except KeyError:
        raise UserError(
            f"unknown perturbation {name!r}; choose from {', '.join(PERTURBATIONS)}"
        ) from None
