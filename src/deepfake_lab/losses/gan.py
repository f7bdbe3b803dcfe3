"""Adversarial losses (registry ``GAN_LOSSES``) and the R1 gradient penalty."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from deepfake_lab.registry import Registry


class GANLoss:
    """An adversarial loss: what D minimises and what G minimises, from D's raw logits."""

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """D's loss. ``real_logits`` ``(B,)``, ``fake_logits`` ``(B',)`` -> scalar."""
        raise NotImplementedError

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        """G's loss. ``fake_logits`` ``(B,)`` -> scalar."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


GAN_LOSSES: Registry[GANLoss] = Registry("GAN loss")


@GAN_LOSSES.register("nonsat")
class NonSaturatingLoss(GANLoss):
    """Logistic loss with the non-saturating G objective (Goodfellow et al. 2014):
    D: ``mean(softplus(-real)) + mean(softplus(fake))``, G: ``mean(softplus(-fake))``."""

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return F.softplus(-fake_logits).mean()


@GAN_LOSSES.register("hinge")
class HingeLoss(GANLoss):
    """Hinge loss (Lim & Ye 2017; used by SAGAN/BigGAN/FastGAN):
    D: ``mean(relu(1 - real)) + mean(relu(1 + fake))``, G: ``-mean(fake)``."""

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return -fake_logits.mean()


def r1_penalty(real_logits: Tensor, real_images: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): the batch mean of ``||grad_x D(x)||^2`` on real images.

    The graph is kept (``create_graph=True``) so the penalty can be backpropagated into D. The
    caller scales it by ``gamma / 2`` (and by the interval, with lazy regularisation).

    Args:
        real_logits: ``D(real_images)`` (or of an augmentation of them), ``(B,)``.
        real_images: the tensor the gradient is taken with respect to, ``(B, ...)``; it must
            have ``requires_grad=True`` before D is run on it.

    Returns:
        Scalar penalty.
    """
    if not real_images.requires_grad:
        raise ValueError("r1_penalty: real_images must have requires_grad=True before D runs")
    # Summing over the batch gives each sample's own gradient, since the logits of different
    # samples do not interact (except through BatchNorm's batch statistics).
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()
