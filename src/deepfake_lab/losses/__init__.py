"""Training losses."""

from deepfake_lab.losses.gan import GAN_LOSSES, GANLoss, HingeLoss, NonSaturatingLoss, r1_penalty

__all__ = ["GAN_LOSSES", "GANLoss", "HingeLoss", "NonSaturatingLoss", "r1_penalty"]
