"""Can the content of speech, not only its rhythm, tell a speaker's own audio from another's?

``bench/avsync_signals.py`` correlates the mouth's opening with the audio's loudness: both
follow the syllable rhythm, and two GRID sentences share one grammar and one rhythm. Here
the audio side says *which* mouth shape to expect: PocketSphinx's English phone recogniser
(the ``pocketsphinx`` wheel ships its acoustic model) turns the audio into phones, and two
fixed tables, written from articulatory phonetics before any clip was read, turn each phone
into a lip aperture (0 lips closed for p/b/m ... 1 open vowels) and a lip rounding (1 for
w/uw/uh/ow/oy). The video side gets matching shapes from dlib's 68 landmarks: outer and
inner lip gap, mouth narrowing (minus the corner-to-corner width) and jaw drop (chin to
nose bridge), all in inter-ocular distances.

Each variant is read like ``avsync_signals.py`` does (lags +-1000 ms, the untouched clip,
four shifted copies, the other GRID speaker's audio); pairs of signals have their
correlation curves averaged. Nothing here is tuned: the tables and variants are fixed, and
every row is printed.

Usage::

    pip install 'deepfake-lab[bench,lips]'
    python bench/avsync_content.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np

from deepfake_lab.video import avsync, mouth, sync_signals
from deepfake_lab.video.decode import read_audio

sys.path.insert(0, str(Path(__file__).parent))
from avsync_signals import CLIPS, MAX_LAG_MS, RATE, print_header, print_rows  # noqa: E402

#: Lip aperture per CMU phone: closed bilabials, labiodentals and /w/, other consonants,
#: then high, mid and low vowels; silence and noise are a closed mouth.
APERTURE = (
    dict.fromkeys("P B M".split(), 0.0)
    | dict.fromkeys("F V W".split(), 0.2)
    | dict.fromkeys("T D N L S Z SH ZH CH JH TH DH K G NG HH Y R".split(), 0.4)
    | dict.fromkeys("IY IH UW UH ER".split(), 0.6)
    | dict.fromkeys("EY EH AH OW OY".split(), 0.8)
    | dict.fromkeys("AA AE AO AW AY".split(), 1.0)
)
#: Lip rounding per CMU phone: rounded vowels and /w/, then partly rounded ones.
ROUNDING = dict.fromkeys("W UW UH OW OY".split(), 1.0) | dict.fromkeys(
    "AO AW ER R SH ZH CH JH".split(), 0.5
)
PHONE_RATE = 100  # PocketSphinx frames per second


def phones(pcm: np.ndarray, rate: int) -> list[tuple[str, int, int]]:
    """(phone, first frame, last frame) at ``PHONE_RATE`` from PocketSphinx's all-phone
    search with its English phone language model."""
    from pocketsphinx import Decoder, get_model_path

    dec = Decoder(
        allphone=get_model_path("en-us/en-us-phone.lm.bin"),
        lm=None,
        loglevel="ERROR",
        beam=1e-20,
        pbeam=1e-20,
        lw=2.0,
    )
    dec.start_utt()
    dec.process_raw((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes(), full_utt=True)
    dec.end_utt()
    return [(s.word, s.start_frame, s.end_frame) for s in dec.seg()]


def phone_signal(segs, table: dict[str, float], times: np.ndarray, fps: float) -> np.ndarray:
    """(T,) the table's value of the phones under each video frame, averaged over it."""
    n = int(np.ceil((times[-1] + 1 / fps) * PHONE_RATE)) + 1
    track = np.zeros(max(n, max((e for _, _, e in segs), default=0) + 1))
    for ph, s, e in segs:
        track[s : e + 1] = table.get(ph, 0.0)
    lo = (times * PHONE_RATE).astype(int)
    hi = np.maximum(((times + 1 / fps) * PHONE_RATE).astype(int), lo + 1)
    return np.array([track[a:b].mean() for a, b in zip(lo, hi, strict=True)])


def shapes(points: np.ndarray) -> dict[str, np.ndarray]:
    """Mouth shapes from (T, 68, 2) landmarks, in inter-ocular distances."""
    iod = np.linalg.norm(points[:, 36:42].mean(1) - points[:, 42:48].mean(1), axis=1)

    def dist(i: list[int], j: list[int]) -> np.ndarray:
        return np.linalg.norm(points[:, i].mean(1) - points[:, j].mean(1), axis=1) / iod

    return {
        "lip gap": dist([50, 51, 52], [58, 57, 56]),
        "inner gap": dist([61, 62, 63], [67, 66, 65]),
        "narrowing": -dist([48], [54]),
        "jaw": dist([8], [27]),
    }


#: name -> ([(mouth signal, audio signal), ...], band-passed to 2-7 Hz)
VARIANTS: dict[str, tuple[list[tuple[str, str]], bool]] = {
    "lip gap / amplitude (reference)": ([("lip gap", "amplitude")], True),
    "lip gap / phone aperture": ([("lip gap", "aperture")], True),
    "openness + lip gap / phone aperture": (
        [("openness", "aperture"), ("lip gap", "aperture")],
        True,
    ),
    "openness + lip gap / amplitude + phone aperture": (
        [(m, a) for m in ("openness", "lip gap") for a in ("amplitude", "aperture")],
        True,
    ),
    "narrowing / phone rounding": ([("narrowing", "rounding")], True),
    "lip gap / aperture + narrowing / rounding": (
        [("lip gap", "aperture"), ("narrowing", "rounding")],
        True,
    ),
    "inner gap / phone aperture": ([("inner gap", "aperture")], True),
    "jaw / phone aperture": ([("jaw", "aperture")], True),
    "lip gap / phone aperture, not band-passed": ([("lip gap", "aperture")], False),
    "lip gap / aperture + narrowing / rounding, not band-passed": (
        [("lip gap", "aperture"), ("narrowing", "rounding")],
        False,
    ),
}


def extract(path: Path, finder, lips) -> dict:
    track = mouth.mouth_track(path, finder, lips=lips, keep_landmarks=True)
    if track.track_frames != len(track.times_s):
        raise SystemExit(f"{path}: the face is missed in some frames; this bench needs all")
    pcm, rate = read_audio(path, RATE)
    sig = {"openness": track.signals["openness"]} | shapes(track.landmarks)
    return {"mouth": sig, "times": track.times_s, "fps": track.fps, "pcm": pcm, "rate": rate}


def read(d: dict, pcm: np.ndarray, pairs: list[tuple[str, str]], band: bool):
    fps, times = d["fps"], d["times"]
    segs = phones(pcm, d["rate"]) if any(a != "amplitude" for _, a in pairs) else []
    audio = {
        "amplitude": lambda: sync_signals.audio_envelope(
            pcm, d["rate"], fps, len(times), times, onsets=False, amplitude=True
        ),
        "aperture": lambda: phone_signal(segs, APERTURE, times, fps),
        "rounding": lambda: phone_signal(segs, ROUNDING, times, fps),
    }
    f = (lambda x: sync_signals.band_limit(x, fps)) if band else (lambda x: x)
    vs = [f(d["mouth"][m]) for m, _ in pairs]
    aus = [f(audio[a]()) for _, a in pairs]
    return avsync.estimate_offset(vs, aus, fps, MAX_LAG_MS, avsync.SURROGATES)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--face-model", type=Path, default=None)
    args = ap.parse_args()
    try:
        import pocketsphinx  # noqa: F401

        from deepfake_lab.video.lips import LipTracker

        lips = LipTracker()
    except Exception as exc:  # noqa: BLE001 - say what is missing and stop
        print(f"needs pocketsphinx and the lips extra: {exc}", file=sys.stderr)
        return 2
    from deepfake_lab.faces.detectors import FACE_DETECTORS

    model = args.face_model or args.shared / "models" / "face_detection_yunet.onnx"
    finder = FACE_DETECTORS.build("yunet", face_model=model)
    data = {c: extract(args.shared / "videos" / c, finder, lips) for c in CLIPS}
    for clip, d in data.items():
        print(f"{clip}: phones " + " ".join(p for p, _, _ in phones(d["pcm"], d["rate"])))
    print()
    print_header()
    for name, (pairs, band) in VARIANTS.items():
        print_rows(name, functools.partial(read, pairs=pairs, band=band), data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
