"""Spectrum detector (Durall, Keuper & Keuper, CVPR 2020, "Watch your Up-Convolution: CNN Based
Generative Deep Neural Networks are Failing to Reproduce Spectral Distributions").

Up-sampling layers leave periodic traces that show up as excess (or missing) power at high
spatial frequencies. The azimuthally averaged log power spectrum turns an image into a short
1-D profile over frequency, and a logistic regression on that profile is a fast, explainable
baseline: its weights say which frequency bands give fakes away.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from deepfake_lab.errors import UserError
from deepfake_lab.models.base import check_positive
from deepfake_lab.models.detectors.base import Detector, luma
from deepfake_lab.models.detectors.registry import DETECTORS

#: ITU-R BT.601 luma weights (as PIL's ``convert("L")``).
#: Added to the power before the log: below the quantisation noise of an 8-bit image
#: (about 5e-6 per coefficient with the orthonormal FFT), so it only guards log(0).
EPS = 1e-8
#: Largest radial frequency, the corner of the spectrum: sqrt(0.5^2 + 0.5^2) cycles/pixel.
MAX_RADIUS = math.sqrt(0.5)


def radial_bins(height: int, width: int, bins: int) -> tuple[Tensor, Tensor]:
    """Radial bin of every FFT coefficient of an ``height`` x ``width`` image, and bin sizes.

    Frequencies are measured in cycles per pixel (``fftfreq``, so no ``fftshift`` is needed:
    the radius of each unshifted coefficient is computed directly), and ``bins`` equal-width
    bins cover 0 .. sqrt(2)/2, the corner. Bins therefore mean the same frequency band at
    every image size, without resampling the image (which would itself filter the traces).

    Returns:
        ``(H * W,)`` int64 bin indices and ``(bins,)`` float32 counts (at least 1, so that an
        empty bin averages to 0 instead of dividing by zero).
    """
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.fftfreq(width)[None, :]
    radius = torch.sqrt(fy**2 + fx**2).flatten()
    index = (radius / MAX_RADIUS * bins).long().clamp_(max=bins - 1)
    counts = torch.bincount(index, minlength=bins).float()
    return index, counts.clamp_(min=1)


@DETECTORS.register("spectrum")
class SpectrumDetector(Detector):
    """Azimuthal average of the log power spectrum, standardised, into a logistic regression.

    Per image: grayscale (BT.601 luma), orthonormal 2-D FFT, power ``|F|^2`` averaged over
    ``bins`` radial bins (``radial_bins``; the bin indices for the nominal size are a
    precomputed buffer, other sizes are computed once and cached, and the average is one
    ``index_add_`` per batch), then ``log(mean + eps)``. Always float32, outside autocast.

    Log of the mean, not mean of the log as in Durall et al.'s code: up-sampling leaves
    isolated spectral peaks (a 2-px checkerboard is one coefficient at the corner), which a
    mean of logs dilutes among a bin's other coefficients, while the mean power keeps them
    (in the tests, a checkerboard of 2.5 grey levels moves the top bin by 6 to 12 log units
    this way, by under 1 the other way).

    Normalisation (our choice): first the profile's mean over bins is subtracted per image
    (a change of contrast multiplies the spectrum, i.e. shifts the whole log profile; it is
    not evidence of fakery), then every bin is standardised over the data by a BatchNorm
    without affine parameters (running statistics in eval mode). Durall et al. min-max
    normalise each profile instead; that squeezes the informative high-frequency bins into a
    narrow range that a logistic regression needs large weights, i.e. many steps, to use,
    whereas standardised inputs train in seconds with the trainer's optimiser. As with any
    BatchNorm, training batches need at least 2 images.

    The classifier is one linear layer (zero-initialised: p = 0.5 for every image at first),
    trained by the shared BCE loss. ``backbone_parameters()`` is empty; ``freeze("backbone")``
    fixes the normalisation statistics. No spatial map, so no Grad-CAM: ``head.weight``
    (one weight per frequency band) is the explanation.

    Args:
        size: nominal input resolution in pixels (other sizes work: bins are in cycles/pixel).
        bins: number of radial frequency bins; every bin must hold some coefficient at
            ``size`` (about ``size / 2`` at most).
    """

    any_size = True

    def __init__(self, size: int = 64, bins: int = 32) -> None:
        super().__init__(size)
        check_positive("spectrum", bins=bins)
        if bins < 2:
            raise UserError(f"spectrum: bins must be at least 2; got {bins}")
        index, counts = radial_bins(size, size, bins)
        if torch.bincount(index, minlength=bins).eq(0).any():
            raise UserError(
                f"spectrum: {bins} bins leave some empty at {size} px; use at most {size // 2}"
            )
        self.bins = bins
        # Derived from (size, bins), so not saved: the state dict holds only learnt values.
        self.register_buffer("bin_index", index, persistent=False)
        self.register_buffer("bin_count", counts, persistent=False)
        self._bin_cache: dict[tuple[int, int, torch.device], tuple[Tensor, Tensor]] = {}
        self.norm = nn.BatchNorm1d(bins, affine=False)
        self.head = nn.Linear(bins, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def _bins_for(self, height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
        if (height, width) == (self.size, self.size) and self.bin_index.device == device:
            return self.bin_index, self.bin_count
        key = (height, width, device)
        if key not in self._bin_cache:
            index, counts = radial_bins(height, width, self.bins)
            self._bin_cache[key] = (index.to(device), counts.to(device))
        return self._bin_cache[key]

    def azimuthal_spectrum(self, x: Tensor) -> Tensor:
        """The raw (unnormalised) profile.

        Args:
            x: float images ``(B, 3, H, W)`` in [-1, 1].

        Returns:
            float32 ``(B, bins)``: log of the mean power per radial bin, low to high frequency.
        """
        with torch.autocast(device_type=x.device.type, enabled=False):
            gray = luma(x)[:, 0]
            spec = torch.fft.fft2(gray, norm="ortho")
            # |F|^2 from real and imaginary parts: abs() has no gradient at 0.
            power = (spec.real.square() + spec.imag.square()).flatten(1)
            index, counts = self._bins_for(gray.shape[-2], gray.shape[-1], x.device)
            sums = power.new_zeros(power.shape[0], self.bins).index_add_(1, index, power)
            return torch.log(sums / counts + EPS)

    def features(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W)`` in [-1, 1] -> the classifier's standardised input ``(B, bins)``."""
        profile = self.azimuthal_spectrum(x)
        profile = profile - profile.mean(dim=1, keepdim=True)
        return self.norm(profile)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, 3, H, W)`` in [-1, 1] -> logits ``(B,)`` (positive = fake)."""
        return self.head(self.features(x))[:, 0]

    def head_modules(self) -> list[nn.Module]:
        return [self.head]
