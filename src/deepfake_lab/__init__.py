"""deepfake-lab: train GAN face generators and deepfake detectors, and measure both honestly."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deepfake-lab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
