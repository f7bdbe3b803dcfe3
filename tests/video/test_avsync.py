"""Audio-visual sync: offsets recovered on signals with a known shift; the sign convention."""

from __future__ import annotations

import numpy as np
import pytest

from avtools import lip_tracker_or_skip, yunet_finder
from conftest import shared_path
from deepfake_lab.errors import UserError
from deepfake_lab.video.avsync import estimate_offset
from deepfake_lab.video.mouth import mouth_motion
from deepfake_lab.video.sync_signals import audio_envelope

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


_GRID = ("grid_bbaf2n_real.mpg", "grid_brbk7n_real.mpg")
_LIPS = pytest.mark.parametrize("lips", [False, True], ids=["openness", "openness+lips"])


@pytest.fixture(scope="module")
def sync_reading(tmp_path_factory):
    """``read(clip, lips, shift_ms=0, other=False)``: ``av_sync`` (lags +-1000 ms: room for a
    clip's own reading plus the largest shift) on a copy of a shared GRID clip with its
    audio shifted, or replaced by the other GRID speaker's; readings cached per module."""
    from avtools import shifted_copy
    from conftest import shared_path
    from deepfake_lab.video.avsync import av_sync

    finder = yunet_finder()
    tmp, cache, trackers = tmp_path_factory.mktemp("sync"), {}, {}

    def read(clip: str, lips: bool, shift: float = 0, other: bool = False) -> dict:
        key = (clip, lips, shift, other)
        if key not in cache:
            if lips and lips not in trackers:
                from deepfake_lab.video.lips import LipTracker, lips_available

                if not lips_available():
                    pytest.skip("the 'lips' extra (dlib + its 68-point model) is not installed")
                trackers[lips] = LipTracker()
            src = shared_path("videos", clip)
            donor = shared_path("videos", _GRID[1 - _GRID.index(clip)]) if other else None
            name = f"{clip[:-4]}_{int(lips)}_{shift:+.0f}_{int(other)}.mkv"
            copy = shifted_copy(src, tmp / name, shift, audio_from=donor)
            cache[key] = av_sync(copy, finder, 1000, lips=trackers.get(lips))
        return cache[key]

    return read


@pytest.mark.parametrize(
    "lips",
    [False, pytest.param(True, marks=pytest.mark.slow)],  # ~5 s each with the lip landmarks
    ids=["openness", "openness+lips"],
)
@pytest.mark.parametrize("clip", _GRID)
def test_shifted_audio_reads_the_original_offset_plus_the_shift(clip, lips, sync_reading):
    """The issue's relative test: absolute readings wander from clip to clip, but a shift of
    the same clip's audio is recovered within +-40 ms, with the crop's mouth openness alone
    and with the 68-point lip opening added."""
    base = sync_reading(clip, lips)
    assert base["mouth_signals"] == (["openness", "lip-gap"] if lips else ["openness"])
    assert base["band_hz"] == [2.0, 7.0] and 0 < base["chance_p"] <= 1
    for shift in (-400, -200, 200, 400):
        r = sync_reading(clip, lips, shift)
        assert r["offset_ms"] == pytest.approx(base["offset_ms"] + shift, abs=40), (shift, r)


@_LIPS
@pytest.mark.parametrize(
    "clip",
    [
        _GRID[0],
        pytest.param(
            _GRID[1],
            # Known open limit (issue 6): on this 3 s clip the other GRID speaker's audio
            # reads a higher confidence than the clip's own (2.7-2.8 against 2.6), with the
            # openness alone and with the lip opening; neither peak beats phase-randomised
            # audio (chance_p 0.2-0.3). strict: flips to a failure the day the signal is
            # good enough, so the mark gets removed.
            marks=pytest.mark.xfail(strict=True, reason="3 s is too short to tell speakers"),
        ),
    ],
)
def test_another_speakers_audio_reads_a_lower_confidence(clip, lips, sync_reading):
    own, other = sync_reading(clip, lips), sync_reading(clip, lips, other=True)
    assert other["confidence"] < own["confidence"], (own["confidence"], other["confidence"])


def test_chance_p_separates_a_matching_signal_from_an_unrelated_one():
    n = 250
    video = _speechlike(n, seed=3)
    matched = estimate_offset(video, video + 0.5 * _speechlike(n, seed=4), FPS, surrogates=99)
    other = estimate_offset(video, _speechlike(n, seed=5), FPS, surrogates=99)
    assert matched.chance_p == pytest.approx(0.01)  # no surrogate reaches it: 1 / (1 + 99)
    assert max(matched.correlation) > matched.chance_level
    assert other.chance_p > 0.05
    again = estimate_offset(video, _speechlike(n, seed=5), FPS, surrogates=99)
    assert again.chance_p == other.chance_p  # seeded
    assert estimate_offset(video, video, FPS).chance_p is None  # off by default


def test_paired_signals_read_each_against_its_own_audio():
    n, shift = 250, 4
    lips, rounding = _speechlike(n + 20, seed=6), _speechlike(n + 20, seed=7)
    video = [lips[10 : 10 + n], rounding[10 : 10 + n]]
    audio = [x[10 - shift : 10 - shift + n] for x in (lips, rounding)]
    est = estimate_offset(video, audio, FPS, surrogates=49)
    assert est.offset_ms == pytest.approx(shift * 40, abs=20) and est.chance_p == 0.02
    swapped = estimate_offset(video, audio[::-1], FPS, surrogates=49)
    assert swapped.confidence < est.confidence / 2 and swapped.chance_p > 0.05
    # One audio signal given once per video signal is the same reading as given once:
    # the pairs share one surrogate, so chance is not understated.
    shared = estimate_offset(video, [audio[0], audio[0].copy()], FPS, surrogates=49)
    assert shared == estimate_offset(video, audio[0], FPS, surrogates=49)
    with pytest.raises(UserError, match="2 video signals but 1 audio signals"):
        estimate_offset(video, audio[:1], FPS)


def test_av_sync_cli_prints_and_writes_the_issue_keys(tmp_path):
    """``av-sync VIDEO --json`` on a shared GRID clip: the keys the issue names, the reading
    the API gives, and the chance-level warning when the peak does not beat chance."""
    import json

    from typer.testing import CliRunner

    from conftest import shared_path
    from deepfake_lab.cli.app import app

    clip = shared_path("videos", "grid_brbk7n_real.mpg")
    model = shared_path("models", "face_detection_yunet.onnx")
    out, png = tmp_path / "sync.json", tmp_path / "sync.png"
    args = ["av-sync", str(clip), "--json", str(out), "--face-model", str(model), "--lips", "off"]
    args += ["--plot", str(png), "--window", "2", "--hop", "0.5"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert {"offset_ms", "confidence", "offset_uncertainty_ms", "chance_p"} <= set(r)
    assert r["mouth_signals"] == ["openness"] and r["frames"] == r["track_frames"] == 75
    text = " ".join(res.output.split())  # rich wraps at the terminal's width
    assert f"{r['offset_ms']:+.0f} ms" in text and f"chance p {r['chance_p']:.2f}" in text
    assert ("not above chance" in text) == (r["chance_p"] > 0.05)
    assert len(r["lags_ms"]) == len(r["correlation"]) == 31  # +-600 ms at 25 fps
    assert len(r["times_s"]) == len(r["audio"]) == len(r["signals"]["openness"]) == 75
    assert max(r["correlation"]) > r["chance_level"] or r["chance_p"] > 0.05
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # 2 s windows (50 frames) every 0.5 s (12 frames) in 75 frames: starting at 0, 12, 24.
    assert [w["start_s"] for w in r["windows"]] == pytest.approx([0.0, 0.48, 0.96], abs=0.01)
    assert "3 windows" in text and "3 of 3 windows read" in text
    for bad, why in ((["--hop", "1"], "--hop needs --window"), (["--window", "0"], "positive")):
        res = CliRunner().invoke(app, ["av-sync", str(clip), "--face-model", str(model), *bad])
        assert res.exit_code == 2 and why in res.output, res.output


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
    grid = str(shared_path("videos", "grid_bbaf2n_real.mpg"))
    for args, why in (
        ([str(tmp_path)], "is a folder; give one video file"),
        ([grid, "--json", str(tmp_path)], "--json"),
        ([grid, "--start", "2", "--end", "1"], "seconds after --start"),
        ([grid, "--start", "-1"], "--start must be a number of seconds, 0 or more"),
    ):
        res = runner.invoke(app, ["av-sync", *args])
        assert res.exit_code == 2 and why in res.output, (args, res.output)
        assert "Traceback" not in res.output


@pytest.mark.slow
def test_av_sync_reads_a_time_range_and_a_damaged_file_up_to_the_damage(tmp_path):
    """--start/--end read only that stretch (the frame times and the audio line up there as
    in the whole file); a cut file is read up to the cut, and says so."""
    from typer.testing import CliRunner

    from deepfake_lab.cli.app import app
    from deepfake_lab.video.avsync import av_sync

    model = shared_path("models", "face_detection_yunet.onnx")
    finder = yunet_finder()
    talk = shared_path("videos", "sadtalker_art0_synthesized.mp4")
    whole = av_sync(talk, finder, window_s=6.0, hop_s=1.0)
    part = av_sync(talk, finder, start_s=2.0, end_s=8.0)
    assert part["frames"] == 150 and part["times_s"][0] == pytest.approx(2.0, abs=0.02)
    window = next(w for w in whole["windows"] if w["start_s"] == pytest.approx(2.0, abs=0.02))
    assert part["offset_ms"] == pytest.approx(window["offset_ms"], abs=1.0)
    assert part["decode_error"] is None

    grid = shared_path("videos", "grid_bbaf2n_real.mpg")
    cut = tmp_path / "cut.mpg"
    cut.write_bytes(grid.read_bytes()[: int(grid.stat().st_size * 0.8)])
    r = av_sync(cut, finder, max_lag_ms=400)
    assert 50 <= r["frames"] < 75 and "decoding stopped at frame" in r["decode_error"]
    res = CliRunner().invoke(
        app,
        ["av-sync", str(cut), "--face-model", str(model), "--lips", "off", "--max-lag-ms", "400"],
    )
    assert res.exit_code == 0 and "read up to the damage" in res.output, res.output

    # Audio damaged, video whole: only the frames the decoded audio covers are read.
    from avtools import damaged_audio_copy

    broken = tmp_path / "broken.mp4"
    t = damaged_audio_copy(talk, broken)
    r = av_sync(broken, finder)
    assert abs(r["frames"] / r["fps"] - t) < 0.2 and "audio decoding failed" in r["decode_error"]


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


@pytest.mark.slow
def test_windowed_readings_follow_a_shift_in_every_window(tmp_path):
    """`av_sync(window_s=...)` on the 9 s SadTalker clip (4 s windows every 2 s, lip
    landmarks on): each window of a copy with its audio shifted reads that window's own
    offset plus the shift, within +-40 ms."""
    from avtools import shifted_copy
    from conftest import shared_path
    from deepfake_lab.video.avsync import av_sync

    lips = lip_tracker_or_skip()
    src = shared_path("videos", "sadtalker_art0_synthesized.mp4")
    finder = yunet_finder()

    def windows(shift: float) -> list[dict]:
        copy = shifted_copy(src, tmp_path / f"s{shift:+.0f}.mkv", shift)
        r = av_sync(copy, finder, lips=lips, window_s=4.0, hop_s=2.0)
        return r["windows"]

    base = windows(0)
    assert [w["start_s"] for w in base] == [0.0, 2.0, 4.0]  # 9.08 s: windows ending by 8 s
    assert all(w["face_coverage"] == 1.0 and "skipped" not in w for w in base)
    for shift in (-400, 200):
        moved = windows(shift)
        for b, m in zip(base, moved, strict=True):
            assert m["offset_ms"] == pytest.approx(b["offset_ms"] + shift, abs=40), (shift, b, m)


def test_windows_skip_stretches_without_the_face_and_refuse_bad_lengths():
    from deepfake_lab.video.avsync import windowed_offsets

    n, fps = 250, 25.0
    video = _speechlike(n, seed=7)
    audio = np.roll(video, 3)  # the audio lags by 3 frames = 120 ms
    present = np.ones(n, bool)
    present[150:] = False  # the face leaves after 6 s
    times = np.arange(n) / fps
    out = windowed_offsets([video], audio, present, times, fps, 4.0, 2.0, surrogates=0)
    assert [w["start_s"] for w in out] == [0.0, 2.0, 4.0, 6.0]
    assert [w["offset_ms"] for w in out[:2]] == pytest.approx([120, 120], abs=20)
    assert "skipped" in out[2] and "50%" in out[2]["skipped"] and "offset_ms" not in out[3]
    with pytest.raises(UserError, match="too short for lags"):
        windowed_offsets([video], audio, present, times, fps, 1.0)
    with pytest.raises(UserError, match="longer than the video"):
        windowed_offsets([video], audio, present, times, fps, 20.0)
    for bad in (float("nan"), -1.0):
        with pytest.raises(UserError, match="positive number of seconds"):
            windowed_offsets([video], audio, present, times, fps, bad)
    # Silence in part of the audio: that window is skipped, not read at the lag limit.
    quiet = audio.copy()
    quiet[:100] = 0.0
    out = windowed_offsets([video], quiet, np.ones(n, bool), times, fps, 4.0, 2.0, surrogates=0)
    assert out[0]["skipped"] == "the audio is silent here" and "offset_ms" in out[2]
    assert out[2]["chance_p"] is None  # surrogates=0: not computed, not 1.0


def test_a_window_reads_the_same_whatever_the_hop():
    from deepfake_lab.video.avsync import windowed_offsets

    n, fps = 200, 25.0
    video = _speechlike(n, seed=11)
    audio = np.roll(video, 2) + 0.8 * _speechlike(n, seed=12)
    times, present = np.arange(n) / fps, np.ones(n, bool)
    coarse = windowed_offsets([video], audio, present, times, fps, 4.0, 2.0, surrogates=50)
    fine = windowed_offsets([video], audio, present, times, fps, 4.0, 1.0, surrogates=50)
    by_start = {w["start_s"]: w for w in fine}
    for w in coarse:
        assert by_start[w["start_s"]] == w


def test_lag_range_and_flat_signals_are_user_errors():
    from deepfake_lab.video.sync_signals import is_flat

    v = _speechlike(100)
    for bad in (-100.0, float("nan"), 10.0):  # 10 ms is under a frame at 25 fps
        with pytest.raises(UserError, match="at least one frame"):
            estimate_offset(v, v, FPS, bad)
    assert is_flat(np.full(50, 1e-10)) and is_flat(np.zeros(50)) and not is_flat(v)
