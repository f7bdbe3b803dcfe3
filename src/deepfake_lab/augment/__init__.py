"""Differentiable image augmentations for GAN training."""

from deepfake_lab.augment.diffaugment import AUGMENTS, diff_augment, parse_policy

__all__ = ["AUGMENTS", "diff_augment", "parse_policy"]
