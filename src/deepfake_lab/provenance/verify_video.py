"""``deepfake-lab verify`` on videos: container tags and the watermark of sampled frames.

Per video:

1. The container tags (MP4 ``ilst``: ``title``, ``comment``, ``description``; what
   ``video.render`` writes): ``description`` holds the JSON provenance record, read back with
   the same field names as an image's ``metadata``. Tags are claims, not proof: anyone can
   write them, and any remux can drop them.
2. The watermark: ``max_frames`` evenly spaced frames (``decode.iter_evenly_spaced``, one
   decoding pass, nothing held) are read with :func:`read_frame_mark`, the direct read that
   ``generate --video`` uses to measure the mark's survival. No crop search: it costs 0.3 s
   a frame, and a video's frames are whole (a cropped or rescaled-and-cropped video reads
   as unmarked here).

Decision rule: the video is watermarked when one valid payload decodes from a strict
majority of the frames checked, ``k >= n // 2 + 1`` of ``n``. Each frame is a false positive
with probability at most ``p = watermark.false_positive_bound(1)`` (3.1e-9: a direct read,
one BCH decode, uniform bits). Frames of one video are far from independent (neighbours
look alike), so the bound that holds whatever the dependence is Markov's: with ``X`` the
number of frames that falsely decode, ``P(X >= k) <= E[X] / k <= n p / k``, under ``2p`` for
the majority rule (5.9e-9 for 33 of 64; ``false_positive_bound``). Were the frames
independent, the binomial tail ``P(Bin(n, p) >= k)`` would apply (~1e-263 for 33 of 64;
``false_positive_bound_independent``). A minority of marked frames is reported
(``frames_marked``, verdict "watermark in a minority of frames") but not called a
watermark: that is what heavy re-encoding leaves (a 200-frame walk of a 64 px FastGAN
upscaled to 256 px: 64/64 frames checked carry the mark at CRF 18, 48/64 at 23, 25/64 at 28).
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from deepfake_lab.errors import UserError
from deepfake_lab.provenance.metadata import TOOL_NAME, is_ai_source_type
from deepfake_lab.provenance.watermark import (
    BCH_T,
    DEFAULT_STRENGTH,
    Payload,
    Reading,
    code_matches,
    extract,
    false_positive_bound,
)
from deepfake_lab.video.container import open_container
from deepfake_lab.video.decode import iter_evenly_spaced

#: Frames checked per video unless told otherwise (``verify --max-frames``).
DEFAULT_MAX_FRAMES = 64
#: The record fields read from the ``description`` tag (as for images' ``metadata``).
_TAG_FIELDS = {
    "digital_source_type": str,
    "generator": str,
    "weights_sha256": str,
    "seed": int,
    "tool": str,
    "tool_version": str,
    "created": str,
    "watermarked": bool,
    "extra": dict,
}


def read_frame_mark(image: np.ndarray, strength: float = DEFAULT_STRENGTH) -> Reading:
    """The watermark of one decoded video frame: the direct read only (~1 ms; no crop
    search, which costs 0.3 s a frame and finds nothing in a whole frame)."""
    return extract(image, search=False, strength=strength)


@dataclass
class MarkTally:
    """Watermark reads of a video's frames, counted per decoded payload.

    Attributes:
        strength: the lattice step the mark was made with.
        frames: frames read so far.
        payloads: frames per valid payload decoded.
        bit_errors: corrected bit errors of each of those frames, per payload.
    """

    strength: float = DEFAULT_STRENGTH
    frames: int = 0
    payloads: Counter[Payload] = field(default_factory=Counter)
    bit_errors: dict[Payload, list[int]] = field(default_factory=dict)

    def add(self, image: np.ndarray) -> Reading:
        """Read one frame's mark (:func:`read_frame_mark`) and count it."""
        reading = read_frame_mark(image, self.strength)
        self.frames += 1
        if reading.found and reading.payload is not None:
            self.payloads[reading.payload] += 1
            self.bit_errors.setdefault(reading.payload, []).append(int(reading.bit_errors or 0))
        return reading

    def share(self, payload: Payload) -> float | None:
        """Fraction of the frames read whose mark decodes to ``payload``; None before any."""
        return self.payloads[payload] / self.frames if self.frames else None

    def majority(self) -> tuple[Payload | None, int]:
        """The payload read from the most frames (ties: the first read) and its count."""
        if not self.payloads:
            return None, 0
        return self.payloads.most_common(1)[0]


def required_frames(n: int) -> int:
    """Frames that must carry the same valid payload, of ``n`` checked: a strict majority."""
    return n // 2 + 1


def video_false_positive_bounds(n: int, k: int) -> tuple[float, float]:
    """``(any dependence, independent frames)`` bounds on an unmarked video of ``n`` checked
    frames having ``k`` or more that read as marked (module docstring): Markov's ``n p / k``
    and the binomial tail. The second underflows to 0.0 below ~1e-308."""
    p = false_positive_bound(1)
    if n < 1 or k < 1:
        return 1.0, 1.0
    tail = 0.0
    for i in range(k, n + 1):
        log = math.log(math.comb(n, i)) + i * math.log(p) + (n - i) * math.log1p(-p)
        tail += math.exp(log) if log > -745 else 0.0
    return min(1.0, n * p / k), min(1.0, tail)


def read_video_tags(path: str | Path) -> dict[str, Any]:
    """The provenance a video's container tags claim.

    Returns:
        The fields of an image's ``read_metadata`` (``digital_source_type``, ``generator``,
        ``weights_sha256``, ``seed``, ``tool``, ``tool_version``, ``created``,
        ``watermarked``, ``extra``; ``ai_generated``), ``source`` (``"container-tags"``
        when the ``description`` tag holds a provenance record, else None), ``format``
        (FFmpeg's container name), ``title`` and ``comment`` (the tags as written, or None),
        ``ours`` (the record names deepfake-lab as its tool) and, for an unparsable
        record, ``error``.
    """
    with open_container(Path(path)) as container:  # video demuxers only, tags never fatal
        tags = {k.lower(): v for k, v in container.metadata.items()}
        fmt = container.format.name
    out: dict[str, Any] = dict.fromkeys(_TAG_FIELDS)
    out |= {"ai_generated": False, "source": None, "format": fmt, "ours": False}
    out |= {"title": tags.get("title"), "comment": tags.get("comment")}
    text = tags.get("description")
    if text:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            data = None
        if isinstance(data, dict):
            for key, kind in _TAG_FIELDS.items():
                value = data.get(key)
                # bool is an int: a seed of True is no seed.
                if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
                    out[key] = value
            if any(out[k] is not None for k in _TAG_FIELDS):
                out["source"] = "container-tags"
        elif text.lstrip().startswith("{"):
            out["error"] = "the description tag is not a valid JSON provenance record"
    out["ai_generated"] = is_ai_source_type(out["digital_source_type"])
    out["ours"] = out["tool"] == TOOL_NAME
    return out


def _verdict(r: dict[str, Any]) -> str:
    if "error" not in r:
        return _finding(r)
    if r["frames_checked"] == 0:
        return "unreadable"
    return f"{_finding(r)}; damaged file, {r['frames_checked']} frames read"


def _finding(r: dict[str, Any]) -> str:
    meta = r.get("metadata") or {}
    if r["watermark"]:
        claimed = meta.get("weights_sha256")
        if claimed and not claimed.startswith(r["payload"]["fingerprint"]):
            return "deepfake-lab watermark (the tags name another generator)"
        return "deepfake-lab watermark"
    if r["frames_marked"]:
        tag = " + AI tag" if meta.get("ai_generated") else ""
        return f"watermark in a minority of frames (below the majority rule){tag}"
    if meta.get("ai_generated"):
        return "AI tag only (metadata, not proof)"
    return "none found"


def _notes(r: dict[str, Any]) -> list[str]:
    meta = r.get("metadata") or {}
    notes = []
    if r["watermark"] and not meta.get("source"):
        notes.append("no provenance tags: stripped or remuxed, the watermark still says ours")
    if not r["watermark"] and meta.get("watermarked") is True and r["frames_checked"]:
        notes.append(
            "the tags say the frames were watermarked, but the mark decodes in "
            f"{r['frames_marked']} of {r['frames_checked']} frames (re-encoded at lower "
            "quality, resized or cropped?)"
        )
    if meta.get("watermarked") is False and meta.get("ours"):
        notes.append("the tags say it was made without a watermark (--no-watermark)")
    return notes


def verify_video(
    path: str | Path,
    secret: bytes | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    strength: float = DEFAULT_STRENGTH,
) -> dict[str, Any]:
    """Read one video's container tags and the watermark of up to ``max_frames`` frames.

    Args:
        path: the video file.
        secret: the owner's secret: the payload's HMAC code is checked (``code_valid``).
        max_frames: frames checked, evenly spaced (all of them in a shorter video).
        strength: the watermark's lattice step.

    Returns:
        ``path``; ``kind`` ("video"); ``watermark`` (the decision rule of the module
        docstring); ``payload`` (the majority payload's ``to_dict``, with ``code_valid``
        when a secret is given; None when no frame decodes); ``bit_errors`` (median over the
        frames carrying it) against ``budget``; ``frames_checked``, ``frames_marked``
        (carrying that payload), ``frames_required``; ``payloads`` (every valid payload
        found, with its frame count); ``false_positive_bound`` (any dependence between
        frames) and ``false_positive_bound_independent``; ``metadata`` (``read_video_tags``);
        ``c2pa`` (None: not read from videos); ``notes``; ``verdict``; and ``error`` (one
        line) when the file cannot be opened or decoding stopped early: the frames read
        before the damage still count.
    """
    path = Path(path)
    if max_frames < 1:
        raise UserError(f"--max-frames must be 1 or more, got {max_frames}")
    tally = MarkTally(strength)
    tags, error = None, None
    try:
        frames = iter_evenly_spaced(path, max_frames)  # raises now on a file it cannot open
        tags = read_video_tags(path)
        for frame in frames:
            tally.add(frame.image)
    except UserError as exc:  # VideoDecodeError included: one line with the reason
        error = str(exc)
    except av.FFmpegError as exc:  # reading the tags of a file that did open: unlikely
        error = f"{path}: cannot read the container tags ({exc})"
    payload, k = tally.majority()
    n = tally.frames
    need = required_frames(n)
    fp_any, fp_indep = video_false_positive_bounds(n, need)
    r: dict[str, Any] = {
        "path": str(path),
        "kind": "video",
        "watermark": payload is not None and k >= need,
        "payload": None,
        "bit_errors": None,
        "budget": BCH_T,
        "frames_checked": n,
        "frames_marked": k,
        "frames_required": need,
        "payloads": [p.to_dict() | {"frames": c} for p, c in tally.payloads.most_common()],
        "false_positive_bound": fp_any,
        "false_positive_bound_independent": fp_indep,
        "metadata": tags,
        "c2pa": None,
    }
    if error is not None:
        r["error"] = error
    if payload is not None:
        r["payload"] = payload.to_dict()
        if secret is not None:
            r["payload"]["code_valid"] = code_matches(payload, secret)
        r["bit_errors"] = int(statistics.median_low(tally.bit_errors[payload]))
    r["notes"] = _notes(r)
    r["verdict"] = _verdict(r)
    return r
