"""Image augmentations: differentiable DiffAugment for GAN training
(``diffaugment``), the random resampling chain every detector training image goes through
(``resample``), and the robustness edits for detector training and the evaluation sweep
(``robustness``)."""

from deepfake_lab.augment.diffaugment import AUGMENTS, diff_augment, parse_policy

__all__ = ["AUGMENTS", "diff_augment", "parse_policy"]
