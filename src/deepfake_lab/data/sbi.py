"""Self-blended images (SBI): pseudo-fakes made from one real face.

After Shiohara and Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022. A
face-swap or a pasted mouth leaves a seam: a region whose colour, sharpness or position
differs slightly from the frame around it, joined by a soft mask. SBI makes exactly that
seam from a single real face, so a detector learns the seam and not one generator's
fingerprint:

1. two copies of the face, *source* and *target*; one of them (chosen at random, as in the
   paper) gets a colour/frequency jitter: RGB shift, hue/saturation/value shift,
   brightness/contrast, then one of downscale-upscale, sharpening or blur, and maybe a JPEG
   round trip. Jittering one copy only keeps the outside of the mask identical to a real
   face in distribution, so a global colour or sharpness change cannot become the label;
2. the source is moved by a small random affine (translation within 3% of the side, scale
   0.95-1.05);
3. a mask: the convex hull of the landmarks (68 points: the face outline; 5 points: an
   ellipse fitted to eyes, nose and mouth), with each vertex moved radially, grown or shrunk
   by a threshold after a blur, then blurred again for a soft edge;
4. ``blend = source * m * r + target * (1 - m * r)`` with a blend ratio ``r`` drawn from
   {0.25, 0.5, 0.75, 1, 1, 1} (the paper's choice).

``resample="mixed"`` takes the resampling filter out of the label: with the default
(``"bilinear"``) the blended source is always warped bilinearly and the downscaled copy
always upscaled bilinearly, so the inside of every mask is a little softer than a real face,
and a detector can learn "soft means fake" (a real face rotated by 3 degrees then reads as
fake). Mixed draws the filter of both at random (bilinear, bicubic, Lanczos) and one time in
four moves the source by whole pixels only, which resamples nothing. Measured (docs,
benchmarks): it halves a ResNet-20's shift under a bilinear round trip of real faces (a
third off a 3 degree rotation's), and reads the FaceForensics++ clip far worse (0.63 against
0.83), whose swapped face is itself softer than its frame; so it is off by default.

``region="mouth"`` builds the mask over the lower face only (below the nose, down to the
chin): the seam that lip-sync tools leave when they paste a generated mouth into a real frame.

Every random number comes from the ``numpy.random.Generator`` passed in, so the same state
gives the same pseudo-fake.
"""

from __future__ import annotations

import cv2
import numpy as np

from deepfake_lab.augment.robustness import jpeg

REGIONS = ("face", "mouth")
RESAMPLING = ("bilinear", "mixed")
_MIXED_FILTERS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4)
_BLEND_RATIOS = np.array([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
# dlib 68-point indices of the lower face: jaw from cheek to cheek, and the nose's base.
_LOWER_FACE_68 = list(range(2, 15)) + [31, 32, 33, 34, 35]


def _five_geometry(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Eye centre, unit vectors across (eye to eye) and down, inter-ocular and eye-mouth
    distances of five (5, 2) points in YuNet's order."""
    eyes = (points[0] + points[1]) / 2
    mouth = (points[3] + points[4]) / 2
    across = points[1] - points[0]
    iod = float(max(np.linalg.norm(across), 1e-3))
    across = across / iod
    down_vec = mouth - eyes
    down = float(max(np.linalg.norm(down_vec), 1e-3))
    return eyes, across, down_vec / down, iod, down


def _ellipse(center: np.ndarray, u: np.ndarray, v: np.ndarray, a: float, b: float) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    return center + np.outer(np.cos(t) * a, u) + np.outer(np.sin(t) * b, v)


def outline(points: np.ndarray, region: str = "face") -> np.ndarray:
    """Polygon (M, 2) of the blend region from 68 or 5 landmarks.

    Five points give ellipses measured on FFHQ-aligned faces: the face spans about 1.05
    inter-ocular distances either side of the eyes' centre, and from 0.37 eye-mouth
    distances above the eyes (the brows) to 1.6 below (the chin); the lower face from the
    nose's base (0.55 below the eyes) to the chin.
    """
    pts = np.asarray(points, np.float64)
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    if len(pts) == 68:
        sel = pts if region == "face" else pts[_LOWER_FACE_68]
        return cv2.convexHull(sel.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    if len(pts) != 5:
        raise ValueError(f"need 68 or 5 landmarks, got {len(pts)}")
    eyes, across, down_dir, iod, down = _five_geometry(pts)
    if region == "face":
        return _ellipse(eyes + 0.61 * down * down_dir, across, down_dir, 1.05 * iod, 0.98 * down)
    return _ellipse(eyes + 1.08 * down * down_dir, across, down_dir, 0.8 * iod, 0.53 * down)


def blend_mask(
    points: np.ndarray, size: int, rng: np.random.Generator, region: str = "face"
) -> np.ndarray:
    """A soft, randomly deformed mask (size, size) float32 in [0, 1] over ``region``."""
    poly = outline(points, region)
    centre = poly.mean(axis=0)
    # Each vertex moved radially (an irregular outline), the whole grown or shrunk a little.
    radial = rng.uniform(0.92, 1.08, len(poly))[:, None] * rng.uniform(0.95, 1.05)
    poly = centre + (poly - centre) * radial
    mask = np.zeros((size, size), np.float32)
    cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1.0)
    # Blur, then a threshold: the threshold sets where the edge falls (dilate below 0.5,
    # erode above); a second blur makes the seam soft, its width random.
    s1 = size * rng.uniform(0.01, 0.04)
    mask = cv2.GaussianBlur(mask, (0, 0), s1)
    mask = (mask >= rng.uniform(0.3, 0.7)).astype(np.float32)
    s2 = size * rng.uniform(0.01, 0.04)
    return np.clip(cv2.GaussianBlur(mask, (0, 0), s2), 0.0, 1.0)


def _filter(rng: np.random.Generator, resample: str) -> int:
    """The OpenCV interpolation flag of one resampling (draws nothing for bilinear)."""
    if resample == "bilinear":
        return cv2.INTER_LINEAR
    return _MIXED_FILTERS[int(rng.integers(len(_MIXED_FILTERS)))]


def _jitter(img: np.ndarray, rng: np.random.Generator, resample: str = "bilinear") -> np.ndarray:
    """Colour and frequency jitter of one copy (uint8 (H, W, 3) -> same)."""
    u = rng.random(5)
    x = img.astype(np.float32)
    if u[0] < 0.3:  # RGB shift up to 20 levels per channel
        x = x + rng.uniform(-20, 20, 3).astype(np.float32)
    if u[1] < 0.3:  # hue (degrees), saturation and value
        hsv = cv2.cvtColor(np.clip(x, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(
            np.float32
        )
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-10, 10) / 2) % 180  # OpenCV hue is 0-179
        hsv[..., 1] *= rng.uniform(0.7, 1.3)
        hsv[..., 2] *= rng.uniform(0.8, 1.2)
        hsv = np.clip(hsv, 0, [179, 255, 255]).astype(np.uint8)
        x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
    if u[2] < 0.3:  # brightness and contrast, +-10%
        mean = x.mean()
        x = (x - mean) * rng.uniform(0.9, 1.1) + mean * rng.uniform(0.9, 1.1)
    out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    # Exactly one frequency change, so the two copies always differ in sharpness or colour.
    kind = int(u[3] * 3)
    size = out.shape[0]
    if kind == 0:  # downscale and back: softer
        small = max(4, round(size * rng.uniform(0.5, 0.8)))
        out = cv2.resize(
            cv2.resize(out, (small, small), interpolation=cv2.INTER_AREA),
            (size, size),
            interpolation=_filter(rng, resample),
        )
    elif kind == 1:  # unsharp mask: crisper
        alpha = rng.uniform(0.2, 0.5)
        soft = cv2.GaussianBlur(out, (0, 0), 1.0).astype(np.float32)
        sharp = out.astype(np.float32) * (1 + alpha) - soft * alpha
        out = np.clip(np.rint(sharp), 0, 255).astype(np.uint8)
    else:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.2))
    if u[4] < 0.3:
        out = jpeg(out, int(rng.integers(50, 96)))
    return out


def _shift(img: np.ndarray, rng: np.random.Generator, resample: str = "bilinear") -> np.ndarray:
    """A small random affine: translation within 3% of the side, scale 0.95-1.05.

    ``resample="mixed"``: a random filter, and one time in four a whole-pixel translation
    without scaling (an exact copy of the pixels, moved).
    """
    size = img.shape[0]
    tx, ty = rng.uniform(-0.03, 0.03, 2) * size
    scale = rng.uniform(0.95, 1.05)
    flags = _filter(rng, resample)
    if resample == "mixed" and rng.random() < 0.25:
        tx, ty, scale, flags = round(tx), round(ty), 1.0, cv2.INTER_NEAREST
    c = size / 2
    m = np.array([[scale, 0, (1 - scale) * c + tx], [0, scale, (1 - scale) * c + ty]])
    return cv2.warpAffine(img, m, (size, size), flags=flags, borderMode=cv2.BORDER_REFLECT)


def self_blend(
    img: np.ndarray,
    points: np.ndarray,
    rng: np.random.Generator,
    region: str = "face",
    resample: str = "bilinear",
) -> tuple[np.ndarray, np.ndarray]:
    """One self-blended pseudo-fake of a real aligned face.

    Args:
        img: uint8 (S, S, 3) RGB, the real face.
        points: (68, 2) or (5, 2) landmarks in ``img`` pixels.
        rng: the generator every random choice draws from.
        region: ``"face"`` (face swap seam) or ``"mouth"`` (lower face: lip-sync seam).
        resample: ``"bilinear"`` (every resampling of the source and of the downscaled
            copy) or ``"mixed"`` (random filters, sometimes none; see the module notes).

    Returns:
        ``(fake, mask)``: uint8 (S, S, 3) and the blend weights actually used, float32
        (S, S) in [0, 1] (the mask times the blend ratio).
    """
    if resample not in RESAMPLING:
        raise ValueError(f"resample must be one of {RESAMPLING}, got {resample!r}")
    source, target = img, img
    if rng.random() < 0.5:
        source = _jitter(img, rng, resample)
    else:
        target = _jitter(img, rng, resample)
    source = _shift(source, rng, resample)
    mask = blend_mask(points, img.shape[0], rng, region) * float(rng.choice(_BLEND_RATIOS))
    m = mask[..., None]
    out = source.astype(np.float32) * m + target.astype(np.float32) * (1 - m)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), mask
