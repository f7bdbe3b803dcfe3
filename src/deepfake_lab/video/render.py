"""A smooth latent-space walk rendered to MP4: ``deepfake-lab generate SOURCE --video``.

The walk: ``K`` keyframe latents from the seeds ``seed .. seed+K-1`` (the latents ``generate``
draws for those seeds) joined by spherical interpolation of the direction and linear
interpolation of the norm (a straight line between two Gaussian latents dips to atypically
short ones, which render washed-out faces), with cosine easing: the walk comes to rest on
each keyframe face. ``loop=True`` returns to the first face.

Frames are generated in batches under ``torch.no_grad`` (deterministic per seed on CPU),
upscaled by an integer factor to at least ``MIN_VIDEO_SIDE`` px (bicubic; sides even, as
yuv420p needs), watermarked one by one by ``generate``'s ``provenance.Marker``, and encoded
as they come into a hidden temp file in the output folder, renamed to ``walk.mp4`` when done.

Codec: H.264 (libx264, yuv420p, CRF ``DEFAULT_CRF``), else MPEG-4 Part 2 at
``MPEG4_BITS_PER_PIXEL``. CRF 18, not libx264's 23, because of the watermark (direct reads
of decoded 256 px frames): FFHQ face cross-fades kept it in 88/88 frames at CRF 18, 85/88 at
20, 49/88 at 23; 200-frame walks of 64 px FastGANs upscaled to 256 px in 100 % at CRF 18,
76-92 % at 23 (two models), ~40 % at 28. Smaller frames lose it sooner (128 px: ~50 % at CRF 18 on
high-contrast content): lower ``crf`` there.

Container tags (MP4 ``ilst``; ffprobe, exiftool, ``av.open(path).metadata``): ``title``;
``comment``, a sentence saying the video is AI-generated (IPTC digital source type
trainedAlgorithmicMedia) by deepfake-lab; ``description``, the JSON provenance record (as in
the PNG ``deepfake-lab:provenance`` chunk).

The written video is decoded back and measured (``render_measure.measure_video``): the share
of frames whose watermark reads with the generator's payload, whole-frame appearance flicker
and, with a YuNet model, landmark jitter per face track. A baseline of independent latents
per frame, rendered and encoded the same way, shows what "smooth" means in numbers.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import torch

from deepfake_lab import __version__
from deepfake_lab.devices import resolve_device
from deepfake_lab.errors import UserError
from deepfake_lab.io import atomic_write_json
from deepfake_lab.models.generators.loading import load_generator
from deepfake_lab.models.latents import latents_for_seeds
from deepfake_lab.pixels import to_uint8
from deepfake_lab.provenance.marking import Marker, ProvenanceOptions
from deepfake_lab.provenance.metadata import DIGITAL_SOURCE_TYPE, ProvenanceInfo
from deepfake_lab.video.render_measure import measure_video

#: ``--codec`` names and their FFmpeg encoders.
CODECS = {"h264": "libx264", "mpeg4": "mpeg4", "mjpeg": "mjpeg"}
VIDEO_NAME, MANIFEST_NAME = "walk.mp4", "walk.json"
MIN_VIDEO_SIDE = 256
DEFAULT_CRF = 18  # keeps the watermark; libx264's default 23 does not (module docstring)
MPEG4_BITS_PER_PIXEL = 0.8  # mpeg4/mjpeg: 1.3 Mbit/s at 256 px, 25 fps; the mark needs ~0.6
BASELINE_FRAMES = 48

Progress = Callable[[str, int, int], None]


def encoder_available(name: str) -> bool:
    """Whether PyAV's FFmpeg has the encoder ``name`` (e.g. ``"libx264"``)."""
    try:
        av.codec.Codec(name, "w")
    except Exception:  # UnknownCodecError, or a build without encoders
        return False
    return True


def choose_codec(codec: str = "auto", log: Callable[[str], None] | None = None) -> str:
    """The ``CODECS`` key to encode with: ``auto`` is h264, else mpeg4 (with a note).

    Raises:
        UserError: an unknown name, or an explicitly asked-for codec that is unavailable.
    """
    if codec != "auto":
        if codec not in CODECS:
            raise UserError(f"unknown codec {codec!r}; choose auto, {', '.join(CODECS)}")
        if not encoder_available(CODECS[codec]):
            raise UserError(
                f"--codec {codec}: this PyAV/FFmpeg build has no {CODECS[codec]} encoder; "
                "use --codec auto or mpeg4"
            )
        return codec
    if encoder_available("libx264"):
        return "h264"
    if encoder_available("mpeg4"):
        if log is not None:
            log("no libx264 encoder in this PyAV/FFmpeg build: writing MPEG-4 Part 2 instead")
        return "mpeg4"
    raise UserError("this PyAV/FFmpeg build has neither a libx264 nor an mpeg4 encoder")


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of direction, linear interpolation of norm.

    Args:
        a, b: (D,) latents.
        t: (N,) positions in [0, 1] (0 gives ``a``, 1 gives ``b``).

    Returns:
        (N, D) latents; with ``|a| == |b|`` every one has that norm.
    """
    na, nb = a.norm(), b.norm()
    t = t.to(a.dtype)[:, None]
    if float(na) < 1e-8 or float(nb) < 1e-8:  # truncation 0: nothing to rotate
        return (1 - t) * a + t * b
    ua, ub = a / na, b / nb
    omega = torch.arccos(torch.clamp(ua @ ub, -1.0, 1.0))
    if float(omega) < 1e-6:
        direction = (1 - t) * ua + t * ub
    else:
        s = torch.sin(omega)
        direction = torch.sin((1 - t) * omega) / s * ua + torch.sin(t * omega) / s * ub
    return direction * ((1 - t) * na + t * nb)


def walk_latents(keys: torch.Tensor, frames: int, loop: bool = False) -> torch.Tensor:
    """Latents of a walk through ``keys`` in ``frames`` steps.

    Args:
        keys: (K, D) keyframe latents, K >= 2.
        frames: frames in the walk (>= 2).
        loop: return to the first keyframe (the last frame is one step before it, so the
            video repeats seamlessly); else the walk ends on the last keyframe.

    Returns:
        (frames, D) latents; frame 0 is ``keys[0]``. Easing ``(1 - cos(pi t)) / 2`` per
        segment: zero speed at each keyframe, no jolt where segments meet.
    """
    k = len(keys)
    segments = k if loop else k - 1
    pos = torch.arange(frames, dtype=torch.float64) * segments / (frames if loop else frames - 1)
    seg = torch.clamp(pos.floor().long(), max=segments - 1)
    t = 0.5 - 0.5 * torch.cos(math.pi * (pos - seg))
    out = torch.empty(frames, keys.shape[1], dtype=keys.dtype)
    for s in seg.unique().tolist():
        m = seg == s
        out[m] = slerp(keys[s], keys[(s + 1) % k], t[m])
    return out


def video_side(gen_size: int, size: int | None = None) -> int:
    """Output side: ``size`` (even, >= 16), else ``gen_size`` times the smallest integer
    reaching ``MIN_VIDEO_SIDE``, rounded up to even."""
    if size is not None:
        if size < 16 or size % 2:
            raise UserError(f"--size must be an even number of pixels >= 16, got {size}")
        return size
    side = gen_size * max(1, math.ceil(MIN_VIDEO_SIDE / gen_size))
    return side + side % 2


def render_frames(
    G: torch.nn.Module, latents: torch.Tensor, side: int, batch: int = 16, device: Any = "cpu"
) -> Iterator[np.ndarray]:
    """Generator frames for ``latents`` (N, D), one at a time: uint8 (side, side, 3) RGB,
    bicubic-upscaled (area-downscaled) from the generator's size; not watermarked."""
    with torch.no_grad():
        for start in range(0, len(latents), batch):
            z = latents[start : start + batch].to(device)
            for img in to_uint8(G(z).float().clamp(-1, 1).cpu()):
                if img.shape[0] != side:
                    up = side > img.shape[0]
                    interp = cv2.INTER_CUBIC if up else cv2.INTER_AREA
                    img = cv2.resize(img, (side, side), interpolation=interp)
                yield img


def encode_video(
    frames: Iterable[np.ndarray],
    path: str | Path,
    side: int,
    fps: float = 25.0,
    codec: str = "h264",
    crf: int = DEFAULT_CRF,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Encode uint8 (side, side, 3) RGB frames into an MP4 at ``path``, atomically.

    Frames are encoded as they come from ``frames``. The file is written to a hidden temp
    file next to ``path`` and renamed when complete; on any error or interrupt it is removed.

    Returns:
        ``{"codec", "encoder", "frames", "quality"}`` (quality: CRF or bit rate).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    rate = Fraction(fps).limit_denominator(1001)
    quality: dict[str, Any]
    n = 0
    try:
        # faststart: the index goes first, so a browser can play the file while loading it.
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            out.metadata.update(metadata or {})
            stream = out.add_stream(CODECS[codec], rate=rate)
            stream.width = stream.height = side
            stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
            if codec == "h264":
                stream.options = {"crf": str(crf), "preset": "medium"}
                quality = {"crf": crf}
            else:
                bit_rate = int(MPEG4_BITS_PER_PIXEL * side * side * float(rate))
                stream.bit_rate = bit_rate
                quality = {"bit_rate": bit_rate}
            for img in frames:
                out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
                n += 1
            out.mux(stream.encode(None))
        os.replace(tmp, path)
    except av.FFmpegError as exc:
        raise UserError(f"encoding {path.name} with {CODECS[codec]} failed: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return {"codec": codec, "encoder": CODECS[codec], "frames": n, "quality": quality}


def render_walk(
    source: str | Path,
    out: str | Path,
    seconds: float | None = None,
    frames: int | None = None,
    fps: float = 25.0,
    keyframes: int | None = None,
    seed: int = 0,
    truncation: float = 1.0,
    loop: bool = False,
    codec: str = "auto",
    crf: int = DEFAULT_CRF,
    size: int | None = None,
    batch: int = 16,
    device: str = "auto",
    provenance: ProvenanceOptions | None = None,
    face_model: str | Path | None = None,
    baseline: bool = True,
    log: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Render a latent walk to ``out/walk.mp4`` and write ``out/walk.json``.

    Args:
        source: run folder, checkpoint or export folder.
        out: output folder (created); ``walk.mp4``/``walk.json`` there must not exist yet.
        seconds: length (default 8 s); or ``frames``: frame count (>= 2), not both.
        fps: frames per second, in (0, 120].
        keyframes: keyframe faces K >= 2 (default one per 2 s, at least 2); seeds
            ``seed .. seed+K-1``.
        seed, truncation: as for ``generate`` (psi in [0, 1]).
        loop: return to the first face (a seamless loop).
        codec: auto | h264 | mpeg4 | mjpeg (``choose_codec``).
        crf: libx264 constant rate factor (0-51, lower is better quality).
        size: output side in px (even); default ``video_side``.
        batch: frames per forward pass.
        device: auto | cpu | cuda.
        provenance: watermark options (C2PA signing is for images only).
        face_model: YuNet ONNX file for landmark jitter; None skips it.
        baseline: also measure independent latents per frame (``BASELINE_FRAMES``).
        log: one-line notes for the user (codec fallback).
        progress: ``(stage, done, total)`` with stages render, measure, baseline.

    Returns:
        The manifest written to ``walk.json``.
    """
    if seconds is not None and frames is not None:
        raise UserError("give --seconds or --frames, not both")
    if not 0 < fps <= 120:
        raise UserError(f"--fps must be in (0, 120], got {fps}")
    if frames is None:
        seconds = 8.0 if seconds is None else seconds
        if not seconds > 0:
            raise UserError(f"--seconds must be positive, got {seconds}")
        frames = round(seconds * fps)
    if frames < 2:
        raise UserError(f"a video needs at least 2 frames, got {frames}")
    keyframes = keyframes if keyframes is not None else max(2, round(frames / fps / 2) + 1)
    if keyframes < 2:
        raise UserError(f"--keyframes must be at least 2, got {keyframes}")
    if not 0.0 <= truncation <= 1.0:
        raise UserError(f"--truncation must be in [0, 1], got {truncation}")
    if not 0 <= crf <= 51:
        raise UserError(f"--crf must be in [0, 51], got {crf}")
    if batch < 1:
        raise UserError(f"--batch must be 1 or more, got {batch}")
    provenance = provenance or ProvenanceOptions()
    provenance.validate()
    if provenance.sign_key is not None:
        raise UserError("C2PA signing (--sign-key/--sign-cert) is for images, not --video")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; --out takes a folder")
    for name in (VIDEO_NAME, MANIFEST_NAME):
        if (out / name).exists():
            raise UserError(f"{out / name} already exists; choose a new output folder")
    codec = choose_codec(codec, log)
    finder = None
    if face_model is not None:
        from deepfake_lab.faces.detectors import FACE_DETECTORS

        finder = FACE_DETECTORS.build("yunet", face_model=face_model)
    dev = resolve_device(device)
    loaded = load_generator(source, device=dev)
    G = loaded.model
    name = f"{loaded.identity['arch']}:{Path(source).resolve().name}"
    marker = Marker(name, loaded.identity["weights_sha256"], provenance)
    side = video_side(G.size, size)
    keys = latents_for_seeds([seed + k for k in range(keyframes)], G.z_dim, truncation)
    info = ProvenanceInfo(
        generator=name,
        weights_sha256=loaded.identity["weights_sha256"],
        seed=seed,
        watermarked=marker.can_mark(np.zeros((side, side, 3), np.uint8)),
        extra={"kind": "latent walk", "keyframes": keyframes, "truncation": truncation},
    )
    metadata = {
        "title": "AI-generated latent walk (deepfake-lab)",
        "comment": (
            f"AI-generated video (IPTC digital source type: trainedAlgorithmicMedia), "
            f"synthesised by deepfake-lab {__version__} with generator '{name}'. "
            "It does not show a real recording."
        ),
        "description": json.dumps({"digital_source_type": DIGITAL_SOURCE_TYPE, **info.to_dict()}),
    }
    out.mkdir(parents=True, exist_ok=True)

    def marked(latents: torch.Tensor, stage: str) -> Iterator[np.ndarray]:
        for i, img in enumerate(render_frames(G, latents, side, batch, dev), 1):
            yield marker.mark(img)
            if progress is not None:
                progress(stage, i, len(latents))

    def measuring(stage: str, total: int) -> Callable[[int], None] | None:
        return None if progress is None else (lambda n: progress(stage, n, total))

    walk = marked(walk_latents(keys, frames, loop), "render")
    video = encode_video(walk, out / VIDEO_NAME, side, fps, codec, crf, metadata)
    marking = marker.summary()  # before the baseline adds to its counts
    # Frames under MIN_SIDE px carry no mark: nothing to verify then.
    payload = marker.payload if info.watermarked else None
    strength = provenance.strength
    measure = measuring("measure", frames)
    measured = measure_video(out / VIDEO_NAME, payload, strength, finder, measure)
    base = None
    if baseline:
        # Independent latents, seeds after the keyframes', rendered and encoded exactly as
        # the walk, to a temp file that is removed afterwards.
        m = min(frames, BASELINE_FRAMES)
        z = latents_for_seeds([seed + keyframes + i for i in range(m)], G.z_dim, truncation)
        tmp = out / f".baseline.{os.getpid()}.mp4"
        try:
            encode_video(marked(z, "baseline"), tmp, side, fps, codec, crf, metadata)
            base = measure_video(tmp, payload, strength, finder)
        finally:
            tmp.unlink(missing_ok=True)
        base = {"latents": "independent per frame", **base}
    manifest = {
        "tool": "deepfake-lab",
        "version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model": loaded.identity,
        "video": {
            "file": VIDEO_NAME,
            **video,
            "fps": fps,
            "frames": frames,
            "seconds": frames / fps,
            "width": side,
            "height": side,
            "resized_from": G.size,  # px; bicubic up, area down
            "bytes": (out / VIDEO_NAME).stat().st_size,
        },
        "walk": {
            "keyframes": keyframes,
            "seeds": [seed + k for k in range(keyframes)],
            "interpolation": "slerp (direction) + linear (norm), cosine easing",
            "loop": loop,
            "truncation": truncation,
        },
        "provenance": {
            **marking,
            "metadata": "MP4 tags: title, comment (AI-generated sentence), description (JSON)",
            "container_metadata": metadata,
        },
        "watermark_frames_verified": measured["watermark_frames_verified"],
        "consistency": measured,
        "baseline": base,
    }
    atomic_write_json(out / MANIFEST_NAME, manifest)
    return manifest
