"""White-box adversarial attacks on detectors: FGSM and PGD under an L-infinity budget.

Scales, exactly: detectors see float images in [-1, 1], i.e. ``x = pixel / 127.5 - 1`` for
8-bit pixels. The usual "epsilon = k/255" is stated on the [0, 1] pixel scale, where the whole
range is 1; the model's range is 2 wide, so the same perturbation is ``2 k / 255`` on the
model's scale. :func:`fgsm` and :func:`pgd` take ``eps`` on the model's scale (the scale of
the tensor they perturb); :func:`eps_on_model_scale` converts a [0, 1]-scale budget, and
:func:`attack_report` takes its budgets as integers k of k/255. One grey level of an 8-bit
image is 1/255 on the [0, 1] scale, so epsilon 4/255 lets every channel of every pixel move by
up to 4 grey levels.

The attacker maximises the binary cross-entropy of the true label (fakes pushed towards "real",
reals towards "fake"); ``target="evade"`` leaves reals alone and only pushes fakes towards
"real", the threat that matters in practice (a forger hiding a fake). Because the model runs in
eval mode, each image's perturbation depends on that image alone, so the fakes of an
``"evade"`` attack are exactly the fakes of a ``"both"`` attack with the same generator.

Attacks run on the float input, without rounding the result to 8 bits: a forger who has to
save a PNG loses a little of the effect, so these numbers are an upper bound for that setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from deepfake_lab.metrics.detection import detection_metrics

if TYPE_CHECKING:
    from deepfake_lab.data.detection import DetectionDataset
    from deepfake_lab.models.detectors.loading import LoadedDetector

Target = Literal["both", "evade"]
ATTACKS = ("fgsm", "pgd")
#: The control row of :func:`attack_report`: random signs at the same budget.
CONTROL = "noise"
#: Width of the model's input range [-1, 1] over the width of the [0, 1] pixel range.
MODEL_SCALE = 2.0
LO, HI = -1.0, 1.0


def eps_on_model_scale(eps_pixels: float) -> float:
    """An L-infinity budget on the [0, 1] pixel scale (e.g. 4/255) on the model's [-1, 1]
    scale (8/255)."""
    return MODEL_SCALE * float(eps_pixels)


def default_step_size(eps: float, steps: int) -> float:
    """PGD step size when none is given: 2.5 eps / steps (Madry et al. 2018), so that the
    iterates can cross the whole eps-ball from a random start with steps to spare."""
    return 2.5 * eps / steps


def _check(x: torch.Tensor, y: torch.Tensor, eps: float, target: str) -> None:
    if x.ndim != 4 or y.shape != x.shape[:1]:
        raise ValueError(f"expected x (B, 3, H, W) and y (B,); got {tuple(x.shape)}, {y.shape}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0; got {eps!r}")
    if target not in ("both", "evade"):
        raise ValueError(f"target must be 'both' or 'evade'; got {target!r}")


def _attacked(y: torch.Tensor, target: Target) -> torch.Tensor:
    """(B, 1, 1, 1) float mask of the images the attacker may change."""
    keep = torch.ones_like(y, dtype=torch.float32) if target == "both" else (y > 0.5).float()
    return keep.view(-1, 1, 1, 1)


def _input_grad(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d(sum of per-image BCE of the true label)/dx, (B, 3, H, W); no parameter gradient.

    The sum, not the mean: each image's gradient is then its own loss's gradient, not
    1/B of it, which keeps small gradients away from float underflow; the sign is the same.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():  # callers may sit inside no_grad (e.g. an evaluation loop)
        logits = model(x).float()
        loss = F.binary_cross_entropy_with_logits(logits, y.float(), reduction="sum")
        # autograd.grad, not backward(): only the input's gradient is computed, so the
        # parameters' .grad (a training step's accumulator) is never touched.
        (grad,) = torch.autograd.grad(loss, x)
    return grad


class _EvalMode:
    """Eval mode inside the block (BatchNorm uses running statistics and does not update
    them), the model's previous mode restored afterwards."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.was_training = model, model.training

    def __enter__(self) -> None:
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)


def fgsm(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    target: Target = "both",
) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): one step of ``eps`` along the sign
    of the loss gradient.

    Args:
        model: a detector, ``model(x)`` -> logits (B,), positive = fake. Run in eval mode; its
            previous mode is restored.
        x: float images (B, 3, H, W) in [-1, 1].
        y: (B,) true labels, 1 = fake, 0 = real.
        eps: L-infinity budget on the model's [-1, 1] scale (k/255 of the pixel range is
            ``eps_on_model_scale(k / 255)`` = 2k/255).
        target: ``"both"`` attacks every image; ``"evade"`` only fakes (reals returned as is).

    Returns:
        Detached adversarial images (B, 3, H, W) in [-1, 1], ``|x_adv - x| <= eps``
        element-wise, same dtype and device as ``x``.
    """
    _check(x, y, eps, target)
    x0 = x.detach().float()
    with _EvalMode(model):
        grad = _input_grad(model, x0, y)
    x_adv = x0 + eps * grad.sign() * _attacked(y, target)
    return x_adv.clamp_(LO, HI).to(x.dtype)


def pgd(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    target: Target = "both",
) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018) on the loss, in the L-infinity ball.

    Each step moves ``step_size`` along the gradient's sign, then projects back into the
    eps-ball around ``x`` and into [-1, 1].

    Args:
        model: a detector, ``model(x)`` -> logits (B,), positive = fake. Run in eval mode; its
            previous mode is restored.
        x: float images (B, 3, H, W) in [-1, 1].
        y: (B,) true labels, 1 = fake, 0 = real.
        eps: L-infinity budget on the model's [-1, 1] scale (2k/255 for k/255 of the pixel
            range; see :func:`eps_on_model_scale`).
        steps: gradient steps (>= 1).
        step_size: per-step size on the model's scale; None: :func:`default_step_size`.
        random_start: start from a uniform point of the eps-ball, not from ``x``.
        generator: the only source of randomness (the random start). Noise is drawn on the
            generator's device and moved to ``x``'s, so a CPU generator gives the same attack
            on any device. None: a fresh generator seeded with 0 (the global RNG is never
            used, so an attack does not shift a training run's random stream).
        target: ``"both"`` attacks every image; ``"evade"`` only fakes (reals returned as is).

    Returns:
        Detached adversarial images (B, 3, H, W) in [-1, 1], ``|x_adv - x| <= eps``
        element-wise, same dtype and device as ``x``.
    """
    _check(x, y, eps, target)
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    alpha = default_step_size(eps, steps) if step_size is None else float(step_size)
    x0 = x.detach().float()
    mask = _attacked(y, target)
    x_adv = x0.clone()
    if random_start:
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        noise = torch.rand(x0.shape, generator=gen, device=gen.device, dtype=torch.float32)
        x_adv = (x0 + (2 * noise.to(x0.device) - 1) * eps * mask).clamp_(LO, HI)
    with _EvalMode(model):
        for _ in range(steps):
            grad = _input_grad(model, x_adv, y)
            x_adv = x_adv + alpha * grad.sign() * mask
            # Project: back into the eps-ball around x, then into the valid range (the
            # intersection of two boxes, so clamping one after the other is exact).
            x_adv = torch.min(torch.max(x_adv, x0 - eps), x0 + eps).clamp_(LO, HI)
    return x_adv.detach().to(x.dtype)


def sign_noise(
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    generator: torch.Generator | None = None,
    target: Target = "both",
) -> torch.Tensor:
    """The non-adversarial control: every element moved by +-eps at random (the corner of
    the eps-ball an attacker would pick, with the gradient replaced by a coin).

    An attack that does no better than this has learnt nothing about the model; a detector
    that survives FGSM but not this has a zero or useless gradient at its inputs (gradient
    masking), not robustness.

    Args:
        x: float images (B, 3, H, W) in [-1, 1].
        y: (B,) labels, 1 = fake (only used by ``target="evade"``).
        eps: budget on the model's [-1, 1] scale.
        generator: the source of the signs (None: a fresh one seeded with 0).
        target: ``"both"`` or ``"evade"`` (reals returned as is).

    Returns:
        (B, 3, H, W) in [-1, 1], ``|x_noisy - x| <= eps``.
    """
    _check(x, y, eps, target)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    coin = torch.randint(0, 2, x.shape, generator=gen, device=gen.device).to(x.device)
    delta = (2 * coin - 1).to(torch.float32) * eps * _attacked(y, target)
    return (x.detach().float() + delta).clamp_(LO, HI).to(x.dtype)


def _summary(
    labels: np.ndarray, logits: np.ndarray, logit_threshold: float, linf: float | None
) -> dict[str, Any]:
    m = detection_metrics(labels, logits, logit_threshold)
    c = m["confusion"]
    return {
        "roc_auc": m["roc_auc"],
        "ap": m["ap"],
        "accuracy": m["accuracy"],
        "detection_rate": m["recall"],  # share of fakes called fake at the threshold
        "false_positive_rate": c["fp"] / (c["fp"] + c["tn"]) if c["fp"] + c["tn"] else 0.0,
        # The perturbation actually applied, in grey levels (k of k/255): a check that the
        # budget held, measured on the images rather than assumed.
        "max_linf_255": linf,
    }


def attack_report(
    det: LoadedDetector,
    data: DetectionDataset,
    device: torch.device | str,
    eps_list: Sequence[float] = (1, 2, 4),
    steps: int = 10,
    batch: int = 64,
    seed: int = 0,
    target: Target = "both",
) -> dict[str, Any]:
    """A detector's metrics on ``data`` clean, under white-box FGSM and PGD, and under
    random-sign noise of the same budgets (the control).

    Args:
        det: the detector; attacked through ``det.differentiable`` (its test-time view),
            judged at ``det.logit_threshold``.
        data: labelled images (both classes for ROC-AUC; fakes for the detection rate).
        device: where the model and the images are.
        eps_list: budgets k of k/255 on the [0, 1] pixel scale (2k/255 on the model's scale).
        steps: PGD steps (step size 2.5 eps / steps, random start).
        batch: images per attacked batch (an attack holds activations for the backward).
        seed: seeds the PGD random start and the control's signs (one CPU generator per row,
            so each row is reproducible on its own and across devices).
        target: ``"both"`` or ``"evade"`` (see :func:`pgd`); the detection rate is the same
            for both, since fakes get the same perturbation.

    Returns:
        JSON-safe ``{"clean": row, "fgsm": {"1": row, ...}, "pgd": {...}, "noise": {...},
        ...}`` with the settings; ``noise`` is the control (:func:`sign_noise`, same budgets:
        read an attack's row against it); each row has ``roc_auc``, ``ap``, ``accuracy``,
        ``detection_rate`` (recall of fakes at the calibrated logit threshold),
        ``false_positive_rate`` and ``max_linf_255`` (the largest perturbation measured, in
        grey levels; None when clean).
    """
    device = torch.device(device)
    labels = data.labels.numpy()
    batches = torch.arange(len(data)).split(batch)

    def run(attack: str | None, k: float) -> dict[str, Any]:
        eps = eps_on_model_scale(k / 255)
        gen = torch.Generator().manual_seed(seed)
        out, linf = [], 0.0
        for idx in batches:
            x, y = data.batch(idx, device)
            if attack == "fgsm":
                x_adv = fgsm(det.differentiable, x, y, eps, target=target)
            elif attack == "pgd":
                x_adv = pgd(
                    det.differentiable, x, y, eps, steps=steps, generator=gen, target=target
                )
            elif attack == CONTROL:
                x_adv = sign_noise(x, y, eps, generator=gen, target=target)
            else:
                x_adv = x
            linf = max(linf, float((x_adv - x).abs().max()) * 255 / MODEL_SCALE)
            out.append(det.logits(x_adv).cpu().numpy())
        logits = np.concatenate(out).astype(np.float64)
        linf_255 = None if attack is None else round(linf, 4)  # float32 noise beyond 1e-4
        return _summary(labels, logits, det.logit_threshold, linf_255)

    report: dict[str, Any] = {
        "eps_unit": "k/255 of the [0, 1] pixel range (2k/255 on the model's [-1, 1] inputs)",
        "target": target,
        "pgd_steps": steps,
        "pgd_step_size": "2.5 * eps / steps, random start",
        "seed": seed,
        "logit_threshold": det.logit_threshold,
        "n_real": int((labels == 0).sum()),
        "n_fake": int((labels == 1).sum()),
        "clean": run(None, 0.0),
    }
    for attack in (*ATTACKS, CONTROL):
        report[attack] = {f"{k:g}": run(attack, k) for k in eps_list}
    return report
