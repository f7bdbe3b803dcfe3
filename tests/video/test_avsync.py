"""Audio-visual sync: offsets recovered on signals with a known shift; the sign convention."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_lab.errors import UserError
from deepfake_lab.video.avsync import audio_envelope, estimate_offset, mouth_motion

FPS = 25.0


def _speechlike(n: int, seed: int = 0) -> np.ndarray:
    """A bursty positive signal (syllable onsets) at the frame rate."""
    rng = np.random.default_rng(seed)
    x = (rng.random(n) < 0.25).astype(float) * rng.uniform(0.5, 1.5, n)
    return np.convolve(x, [0.3, 1.0, 0.5], mode="same")


@pytest.mark.parametrize("shift_frames", [-10, -5, 0, 5, 10])
def test_a_known_shift_is_recovered_with_the_documented_sign(shift_frames):
    n = 200
    base = _speechlike(n + 40)
    video = base[20 : 20 + n]
    audio = base[20 - shift_frames : 20 - shift_frames + n]  # audio[t] = video[t - shift]
    est = estimate_offset(video, audio, FPS)
    assert est.offset_ms == pytest.approx(shift_frames * 40, abs=20)  # within half a frame
    # The peak is as wide as the signal's own autocorrelation (3 frames here): +-1.5 frames.
    assert est.confidence > 5 and est.offset_uncertainty_ms <= 80


def test_unrelated_audio_reads_a_lower_confidence():
    n = 200
    video = _speechlike(n, seed=1)
    matched = estimate_offset(video, video + 0.3 * _speechlike(n, seed=9), FPS)
    other = estimate_offset(video, _speechlike(n, seed=2), FPS)
    assert other.confidence < matched.confidence / 2


def test_audio_envelope_finds_onsets_at_the_right_frames():
    rate, n = 16000, 50
    t = np.arange(int(n / FPS * rate)) / rate
    pcm = np.zeros_like(t)
    for start in (0.4, 1.2):  # two 200 ms tone bursts in the speech band
        on = (t >= start) & (t < start + 0.2)
        pcm[on] = 0.5 * np.sin(2 * np.pi * 1000 * t[on])
    env = audio_envelope(pcm, rate, FPS, n)
    peaks = sorted(np.argsort(env)[-2:])
    assert [abs(p - s * FPS) <= 1.5 for p, s in zip(peaks, (0.4, 1.2), strict=True)] == [True, True]


def test_mouth_motion_reads_the_mouth_region_only():
    crops = np.full((6, 64, 64, 3), 120, np.uint8)
    crops[3, 5:15, 5:15] = 250  # forehead change: not the mouth
    assert mouth_motion(crops).max() == 0
    crops[4, 48:54, 24:40] = 30  # the mouth opens at frame 4
    m = mouth_motion(crops)
    assert m.argmax() in (4, 5) and m[4] > 0 and m[1] == 0


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(UserError, match="too few"):
        estimate_offset(np.ones(20), np.ones(20), FPS)
    with pytest.raises(UserError, match="differ in length"):
        estimate_offset(np.ones(100), np.ones(90), FPS)
    with pytest.raises(UserError, match="8 kHz"):
        audio_envelope(np.zeros(100), 4000, FPS, 4)


@pytest.mark.parametrize("lips", [False, True], ids=["openness", "openness+lips"])
@pytest.mark.parametrize(
    "clip",
    [
        "grid_bbaf2n_real.mpg",
        pytest.param(
            "grid_brbk7n_real.mpg",
            # Known open limit (issue 6): on this clip the mouth/energy correlation is weak
            # (confidence ~1.3, below another speaker's audio) with the openness alone and
            # with the lip opening added; some shifted copies read 200-300 ms off. strict:
            # flips to a failure the day the signal is good enough, so the mark gets removed.
            marks=pytest.mark.xfail(strict=True, reason="weak mouth signal on this clip"),
        ),
    ],
)
def test_shifted_audio_reads_the_original_offset_plus_the_shift(clip, lips, tmp_path):
    """The issue's relative test: absolute readings wander from clip to clip, but a shift of
    the same clip's audio is recovered (within +-40 ms), and another speaker's audio gives a
    lower confidence; with the crop's mouth openness alone and with the 68-point lip
    opening added."""
    from avtools import shifted_copy
    from conftest import shared_path
    from deepfake_lab.faces.detectors import FACE_DETECTORS
    from deepfake_lab.video.avsync import av_sync

    src = shared_path("videos", clip)
    other = shared_path(
        "videos", "grid_brbk7n_real.mpg" if "bbaf" in clip else "grid_bbaf2n_real.mpg"
    )
    finder = FACE_DETECTORS.build(
        "yunet", face_model=shared_path("models", "face_detection_yunet.onnx")
    )
    tracker = None
    if lips:
        from deepfake_lab.video.lips import LipTracker, lips_available

        if not lips_available():
            pytest.skip("the 'lips' extra (dlib + its 68-point model) is not installed")
        tracker = LipTracker()
    lag = 1000  # room for this clip's own reading plus the largest shift

    def read(name: str, shift: float, audio_from=None) -> dict:
        copy = shifted_copy(src, tmp_path / name, shift, audio_from=audio_from)
        return av_sync(copy, finder, lag, lips=tracker)

    base = read("s0.mkv", 0)
    assert base["mouth_signals"] == (["openness", "lip-gap"] if lips else ["openness"])
    for shift in (-400, -200, 200, 400):
        r = read(f"s{shift}.mkv", shift)
        assert r["offset_ms"] == pytest.approx(base["offset_ms"] + shift, abs=40), (shift, r)
    assert read("other.mkv", 0, audio_from=other)["confidence"] < base["confidence"]


def test_av_sync_cli_user_mistakes_are_one_line(tmp_path):
    from typer.testing import CliRunner

    from deepfake_lab.cli.app import app

    runner = CliRunner()
    for path, why in ((tmp_path / "missing.mp4", "not found"), (tmp_path / "bad.mp4", "video")):
        if "bad" in path.name:
            path.write_bytes(b"garbage")
        res = runner.invoke(app, ["av-sync", str(path)])
        assert res.exit_code == 2 and why in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output


def test_lip_opening_is_the_outer_lip_gap_in_inter_ocular_units():
    from deepfake_lab.video.lips import lip_opening

    pts = np.zeros((2, 68, 2))
    pts[:, 36:42] = (30.0, 40.0)  # left eye centre
    pts[:, 42:48] = (70.0, 40.0)  # right eye: 40 px apart
    pts[:, [50, 51, 52], 1] = 80.0
    pts[0, [56, 57, 58], 1] = 84.0  # closed: 4 px
    pts[1, [56, 57, 58], 1] = 100.0  # open: 20 px
    assert lip_opening(pts) == pytest.approx([0.1, 0.5])


def test_lip_tracker_missing_model_is_a_clear_error(tmp_path):
    pytest.importorskip("dlib")
    from deepfake_lab.video.lips import LipTracker

    with pytest.raises(UserError, match="lip landmark model not found"):
        LipTracker(tmp_path / "nope.dat")
