"""The two sides of audio-visual sync as signals sampled at the video frames, and what
both get before they are correlated (``avsync``).

- Audio envelope: RMS of the speech band (300-3400 Hz) in windows centred on each video
  frame, floored ``ENVELOPE_RANGE_DB`` below the loudest window (digital silence, e.g. the
  padding of a shifted track, would otherwise be an outlier), as amplitude (``av_sync``),
  dB, or the positive first difference of the dB (onsets).
- ``band_limit``: both sides band-passed to ``SYLLABLE_BAND_HZ`` (2-7 Hz), where mouth
  opening and the speech envelope are most coherent (Chandrasekaran et al. 2009, PLoS
  Comput Biol 5(7)): it removes the speech/silence plateau and slow drift, which otherwise
  decide the peak.
- ``zscore``, ``is_flat`` and the phase-randomised surrogates behind ``chance_p``.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfiltfilt

from deepfake_lab.errors import UserError

#: Syllable-rate band (Hz) both signals are filtered to before correlating (module docstring).
SYLLABLE_BAND_HZ = (2.0, 7.0)
#: Windows quieter than the loudest by more than this (dB) are floored there.
ENVELOPE_RANGE_DB = 60.0


def audio_envelope(
    pcm: np.ndarray,
    rate: int,
    fps: float,
    n_frames: int,
    times_s: np.ndarray | None = None,
    onsets: bool = True,
    window_frames: float = 2.0,
    amplitude: bool = False,
    range_db: float = ENVELOPE_RANGE_DB,
) -> np.ndarray:
    """Speech-band envelope sampled at the video frames.

    Args:
        pcm: (N,) mono float audio; sample ``i`` at ``i / rate`` s.
        rate: its sample rate (Hz).
        fps: video frame rate.
        n_frames: frames to sample.
        times_s: start time of each frame (default ``t / fps``); windows are centred half
            a frame later.
        onsets: return the positive first difference of the energy in dB (True) or the
            envelope itself (False).
        window_frames: length of the energy window, in frames (longer: smoother).
        amplitude: without ``onsets``, the RMS amplitude instead of the energy in dB.
        range_db: windows more than this below the loudest are floored there.

    Returns:
        (n_frames,) float: band energy in dB (or RMS amplitude), or the positive first
        difference of the dB.
    """
    if rate < 8000:
        raise UserError(f"audio at {rate} Hz is too coarse for the speech band; need >= 8 kHz")
    sos = butter(4, [300, 3400], btype="bandpass", fs=rate, output="sos")
    band = sosfiltfilt(sos, np.asarray(pcm, np.float64))
    half = int(window_frames * rate / fps / 2)  # windows centred on each frame
    starts = np.arange(n_frames) / fps if times_s is None else np.asarray(times_s, np.float64)
    centres = ((starts + 0.5 / fps) * rate).astype(int)
    energy = np.empty(n_frames)
    for i, c in enumerate(centres):
        seg = band[max(0, c - half) : c + half]
        energy[i] = 10 * np.log10(np.mean(seg**2) + 1e-20) if len(seg) else -200.0
    energy = np.maximum(energy, energy.max() - range_db)
    if not onsets:
        return 10 ** (energy / 20) if amplitude else energy
    return np.maximum(np.diff(energy, prepend=energy[0]), 0.0)


def band_limit(
    x: np.ndarray, fps: float, band: tuple[float, float] = SYLLABLE_BAND_HZ
) -> np.ndarray:
    """``x`` band-passed to ``band`` Hz (2nd-order Butterworth, forward and backward, so no
    delay is added).

    Args:
        x: (T,) a signal sampled at ``fps``.
        fps: its rate; the band's top is lowered to 0.9 x Nyquist for low frame rates.
        band: (low, high) in Hz.

    Returns:
        (T,) float64.

    Raises:
        UserError: too few frames to filter, or a band above the Nyquist frequency.
    """
    lo, hi = band[0], min(band[1], 0.45 * fps)
    if not 0 < lo < hi:
        raise UserError(f"{fps:g} fps is too low for a {band[0]:g}-{band[1]:g} Hz band")
    sos = butter(2, [lo, hi], btype="bandpass", fs=fps, output="sos")
    x = np.asarray(x, np.float64)
    if len(x) < 16:
        raise UserError(f"{len(x)} frames are too few to filter; use a longer clip")
    return sosfiltfilt(sos, x, padlen=min(len(x) - 1, 3 * (2 * len(sos) + 1)))


def phase_randomised(signals: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Surrogates of ``signals`` (same length): each keeps its power spectrum, and all get
    the same random phase shifts, so their relations to each other survive and only their
    relation to anything else is destroyed (multivariate surrogates, Prichard and Theiler
    1994, Phys Rev Lett 73(7)); z-scored."""
    n = len(signals[0])
    phase = np.exp(1j * rng.uniform(0, 2 * np.pi, n // 2 + 1))
    phase[0] = 1.0
    if n % 2 == 0:
        phase[-1] = 1.0  # the Nyquist bin stays real
    return [zscore(np.fft.irfft(np.fft.rfft(a) * phase, n)) for a in signals]


def zscore(x: np.ndarray) -> np.ndarray:
    """``x`` minus its mean over its standard deviation (all zeros when constant)."""
    x = np.asarray(x, np.float64)
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def is_flat(x: np.ndarray) -> bool:
    """True when ``x`` does not vary (digital silence, a mouth that never moves): nothing to
    correlate, and every lag would tie."""
    x = np.asarray(x, np.float64)
    return not np.isfinite(x).all() or float(np.ptp(x)) <= 1e-9 * max(float(np.abs(x).max()), 1e-30)
