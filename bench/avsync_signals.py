"""What each audio-visual sync signal buys, measured on the shared talking-face clips.

For every clip with audio, the main face track is decoded once; then each variant of the
mouth signal (video side) and of the audio envelope (audio side) is correlated with

- the untouched audio: the absolute reading, its confidence and uncertainty;
- the audio shifted by -400, -200, +200, +400 ms (done on the PCM here, which is what the
  tests do through a rebuilt file): the error of ``reading - untouched reading - shift``;
- another clip's audio (GRID clips only, same length): the confidence, which should drop.

Usage::

    python bench/avsync_signals.py [--shared ../shared] [--face-model PATH]

Prints one table row per variant and clip. Nothing here is tuned to these clips: the
variants are fixed in advance, and the table shows all of them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

from deepfake_lab.video import avsync, mouth, sync_signals
from deepfake_lab.video.decode import read_audio
from deepfake_lab.video.lips import LipTracker, lips_available

CLIPS = ("grid_bbaf2n_real.mpg", "grid_brbk7n_real.mpg", "sadtalker_art0_synthesized.mp4")
SHIFTS_MS = (-400, -200, 200, 400)
RATE = 16000
MAX_LAG_MS = 1000.0  # what the tests use: room for a clip's own reading plus +-400 ms


def extract(path: Path, finder, lips) -> dict:
    """The main track's mouth signals (``mouth.mouth_track``), PCM, frame times, fps."""
    track = mouth.mouth_track(path, finder, lips=lips, keep_crops=True)
    signals = dict(track.signals)
    if track.track_frames == len(track.times_s):  # motion needs the crops of every frame
        signals["motion"] = mouth.mouth_motion(track.crops)
    pcm, rate = read_audio(path, RATE)
    return {"mouth": signals, "times": track.times_s, "fps": track.fps, "pcm": pcm, "rate": rate}


def _detrend(x: np.ndarray, fps: float, seconds: float = 1.0) -> np.ndarray:
    """Minus a moving average of ``seconds``: removes slow drift, keeps syllables."""
    return x - uniform_filter1d(np.asarray(x, np.float64), int(round(seconds * fps)) | 1)


def variant(
    signals: tuple[str, ...],
    onsets=False,
    window=2.0,
    detrend=False,
    floor=False,
    amplitude=False,
    band=False,
):
    """A reading function: (clip data, PCM) -> SyncEstimate. ``floor``: the envelope's
    ``ENVELOPE_RANGE_DB`` floor (off: as before it existed); ``band``: both sides band-passed
    to ``SYLLABLE_BAND_HZ``."""

    def read(d: dict, pcm: np.ndarray) -> avsync.SyncEstimate:
        env = sync_signals.audio_envelope(
            pcm,
            d["rate"],
            d["fps"],
            len(d["times"]),
            d["times"],
            onsets,
            window,
            amplitude,
            sync_signals.ENVELOPE_RANGE_DB if floor else np.inf,
        )
        sig = [d["mouth"][m] for m in signals]
        if detrend:
            env, sig = _detrend(env, d["fps"]), [_detrend(v, d["fps"]) for v in sig]
        if band:
            env = sync_signals.band_limit(env, d["fps"])
            sig = [sync_signals.band_limit(v, d["fps"]) for v in sig]
        return avsync.estimate_offset(sig, env, d["fps"], MAX_LAG_MS, avsync.SURROGATES)

    return read


VARIANTS = {
    "openness / energy dB (first)": variant(("openness",)),
    "motion / onsets": variant(("motion",), onsets=True),
    "openness / onsets": variant(("openness",), onsets=True),
    "openness / energy, 4-frame audio window": variant(("openness",), window=4.0),
    "openness / energy, 1 s detrended": variant(("openness",), detrend=True),
    "lip-gap (68 points) / energy": variant(("lip-gap",)),
    "openness + lip-gap / energy (second)": variant(("openness", "lip-gap")),
    "openness + lip-gap / energy, 60 dB floor": variant(("openness", "lip-gap"), floor=True),
    "openness + lip-gap / energy dB, floor, 2-7 Hz": variant(
        ("openness", "lip-gap"), floor=True, band=True
    ),
    "openness / amplitude, floor, 2-7 Hz": variant(
        ("openness",), floor=True, amplitude=True, band=True
    ),
    "openness + lip-gap / amplitude, floor, 2-7 Hz (now)": variant(
        ("openness", "lip-gap"), floor=True, amplitude=True, band=True
    ),
}


def shift_pcm(pcm: np.ndarray, ms: float, rate: int) -> np.ndarray:
    n = int(round(abs(ms) / 1000 * rate))
    pad = np.zeros(n, pcm.dtype)
    return np.concatenate([pad, pcm])[: len(pcm)] if ms > 0 else np.concatenate([pcm[n:], pad])


def print_header() -> None:
    print(
        "| variant | clip | untouched offset ms (conf, +-unc, chance p) | shift errors ms "
        "(-400/-200/+200/+400) | other speaker conf (chance p) |"
    )
    print("|---|---|---|---|---|")


def print_rows(name: str, read, data: dict) -> None:
    """One table row per clip for the reading function ``read(clip data, PCM)``: the
    untouched clip, the errors of its shifted copies, and (GRID clips) the confidence with
    the other speaker's audio."""
    others = {CLIPS[0]: CLIPS[1], CLIPS[1]: CLIPS[0]}
    for clip, d in data.items():
        base = read(d, d["pcm"])
        errs = [
            read(d, shift_pcm(d["pcm"], s, d["rate"])).offset_ms - base.offset_ms - s
            for s in SHIFTS_MS
        ]
        other = "-"
        if clip in others:
            r = read(d, np.resize(data[others[clip]]["pcm"], len(d["pcm"])))
            other = f"{r.confidence:.2f} ({r.chance_p:.2f})"
        print(
            f"| {name} | {clip.split('_')[1]} | {base.offset_ms:+.0f} ({base.confidence:.2f},"
            f" +-{base.offset_uncertainty_ms:.0f}, p {base.chance_p:.2f}) | "
            f"{' / '.join(f'{e:+.0f}' for e in errs)} | {other} |",
            flush=True,
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--face-model", type=Path, default=None)
    args = ap.parse_args()
    from deepfake_lab.faces.detectors import FACE_DETECTORS

    model = args.face_model or args.shared / "models" / "face_detection_yunet.onnx"
    finder = FACE_DETECTORS.build("yunet", face_model=model)
    lips = LipTracker() if lips_available() else None
    data = {c: extract(args.shared / "videos" / c, finder, lips) for c in CLIPS}
    print_header()
    for name, read in VARIANTS.items():
        if "lip-gap" in name and lips is None:
            print(f"| {name} | - | skipped: pip install 'deepfake-lab[lips]' | | |")
            continue
        print_rows(name, read, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
