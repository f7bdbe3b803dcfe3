"""Losses of GAN training: the adversarial losses behind ``GAN_LOSSES``
(non-saturating, hinge) and the R1 gradient penalty."""

from deepfake_lab.losses.gan import GAN_LOSSES, GANLoss, HingeLoss, NonSaturatingLoss, r1_penalty

__all__ = ["GAN_LOSSES", "GANLoss", "HingeLoss", "NonSaturatingLoss", "r1_penalty"]
