"""The signals audio-visual sync correlates: the speech envelope and the syllable band."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_lab.errors import UserError
from deepfake_lab.video.sync_signals import audio_envelope, band_limit

FPS = 25.0


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


def test_envelope_floors_digital_silence_and_band_limit_keeps_syllable_rate():
    rate, n = 16000, 100
    t = np.arange(int(n / FPS * rate)) / rate
    pcm = 0.3 * np.sin(2 * np.pi * 1000 * t) * (1 + np.sin(2 * np.pi * 4 * t))
    pcm[: rate // 2] = 0.0  # half a second of digital silence, as a shifted track starts
    env = audio_envelope(pcm, rate, FPS, n, onsets=False)
    loud = env.max()
    assert env.min() == pytest.approx(loud - 60.0)  # floored, not -200 dB
    amp = audio_envelope(pcm, rate, FPS, n, onsets=False, amplitude=True)
    assert amp == pytest.approx(10 ** (env / 20))
    # A slow drift plus a 4 Hz syllable rhythm: the band keeps the rhythm, drops the drift.
    k = np.arange(n)
    drift, rhythm = 5 * k / n, np.sin(2 * np.pi * 4 * k / FPS)
    out = band_limit(drift + rhythm, FPS)
    assert np.corrcoef(out[10:-10], rhythm[10:-10])[0, 1] > 0.95
    assert abs(out.mean()) < 0.1 and band_limit(drift, FPS)[10:-10].std() < 0.1 * drift.std()
    with pytest.raises(UserError, match="too low"):
        band_limit(rhythm, 4.0)


def test_surrogates_keep_each_spectrum_and_the_signals_relation_to_each_other():
    from deepfake_lab.video.sync_signals import phase_randomised, zscore

    rng = np.random.default_rng(0)
    a = np.convolve(rng.normal(size=400), np.ones(5) / 5, mode="same")
    b = 0.8 * a + 0.6 * np.convolve(rng.normal(size=400), np.ones(5) / 5, mode="same")
    sa, sb = phase_randomised([a, b], np.random.default_rng(1))
    power = np.abs(np.fft.rfft(zscore(a))) ** 2
    assert np.allclose(np.abs(np.fft.rfft(sa)) ** 2, power)  # the spectrum is kept
    assert np.corrcoef(sa, a)[0, 1] < 0.3  # the time course is not
    # One draw shares its phases: a and b stay as related as they were.
    assert np.corrcoef(sa, sb)[0, 1] == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-9)
