"""What ``generate --video`` measures on the video it wrote, decoded back.

One decoding pass (``decode.iter_frames``) gives:

- watermark survival: the share of frames whose mark reads with the generator's payload,
  read by ``provenance.verify_video.MarkTally`` (the per-frame read that
  ``deepfake-lab verify`` applies to videos);
- whole-frame appearance flicker (``temporal.appearance_flicker``) on 64 px thumbnails;
- with a face detector, landmark jitter and crop consistency per face track
  (``tracks.link_tracks``, ``temporal.track_consistency``).

``render.render_walk`` measures the walk and, as a baseline, independent latents per frame
rendered and encoded the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deepfake_lab.provenance.verify_video import MarkTally
from deepfake_lab.provenance.watermark import DEFAULT_STRENGTH, Payload
from deepfake_lab.video.decode import iter_frames
from deepfake_lab.video.temporal import appearance_flicker, track_consistency
from deepfake_lab.video.tracks import link_tracks

_THUMB = 64  # side of the thumbnails and face crops kept for the temporal measures


def measure_video(
    path: str | Path,
    payload: Payload | None = None,
    strength: float = DEFAULT_STRENGTH,
    finder: Any = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Decode ``path`` once and measure watermark survival and temporal consistency.

    Args:
        path: the video.
        payload: the expected watermark payload; None skips the watermark check.
        strength: the watermark's lattice step.
        finder: a face detector (``faces.detectors``) for landmark jitter; None skips it.
        progress: called with the number of frames decoded so far.

    Returns:
        ``frames``, ``width``, ``height``; ``watermark_frames_verified`` (fraction in [0, 1]
        of frames whose mark decodes to ``payload``, or None); ``flicker``/``flicker_hf``
        (whole-frame luma differences in [0, 1]); ``landmark_jitter`` (inter-ocular units,
        frame-weighted over face tracks; None without faces or ``finder``), ``face_frames``
        and ``tracks`` (per-track consistency), or ``landmark_jitter_skipped`` (why).
    """
    from deepfake_lab.faces.align import align_face

    thumbs, index, records, crops = [], [], [], {}
    marks = MarkTally(strength) if payload is not None else None
    shape = (0, 0)
    for n, fr in enumerate(iter_frames(path), 1):
        img, shape = fr.image, fr.image.shape[:2]
        if marks is not None:
            marks.add(img)
        # 64 px thumbnails (12 kB a frame) carry the flicker; full frames are not kept.
        thumbs.append(cv2.resize(img, (_THUMB, _THUMB), interpolation=cv2.INTER_AREA))
        index.append(fr.index)
        if finder is not None:
            kept = []
            for f in finder.detect(img):
                try:
                    crops[id(f)] = align_face(img, f.landmarks, _THUMB)[0]
                except ValueError:  # degenerate landmarks
                    continue
                kept.append(f)  # ``records`` keeps ``f`` alive, so its id stays unique
            records.append((fr.index, fr.time_s, kept))
        if progress is not None:
            progress(n)
    idx = np.array(index)
    flicker, flicker_hf = appearance_flicker(np.stack(thumbs), idx) if thumbs else (None, None)
    result: dict[str, Any] = {
        "frames": len(index),
        "height": int(shape[0]),
        "width": int(shape[1]),
        "watermark_frames_verified": None
        if marks is None or payload is None
        else marks.share(payload),
        "flicker": flicker,
        "flicker_hf": flicker_hf,
        "landmark_jitter": None,
    }
    if finder is None:
        result["landmark_jitter_skipped"] = "no face model given (--face-model PATH to YuNet)"
        return result
    tracks = []
    for track in link_tracks(records):
        faces = track.faces
        c = track_consistency(
            np.stack([f.face.landmarks for f in faces]),
            np.stack([crops[id(f.face)] for f in faces]),
            np.array([f.frame_index for f in faces]),
        )
        tracks.append({"id": track.id, **c.to_dict()})
    scored = [t for t in tracks if t["landmark_jitter"] is not None]
    if scored:
        w = np.array([t["frames"] for t in scored], float)
        result["landmark_jitter"] = float(
            np.average([t["landmark_jitter"] for t in scored], weights=w)
        )
    else:
        result["landmark_jitter_skipped"] = "no face track of 7 or more consecutive frames"
    result["face_frames"] = sum(1 for r in records if r[2])
    result["tracks"] = tracks
    return result
