"""The GAN training config: every knob of ``deepfake-lab train gan``, typed and validated.

Common choices have CLI flags (``--arch``, ``--size``, ``--kimg``, ...); everything else is set
with a YAML file (``--config``) or ``--set section.key=value``. Unknown keys are errors.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from deepfake_lab.config import StrictModel
from deepfake_lab.errors import UserError
from deepfake_lab.training.parallel_fields import SYNC_BATCHNORM, global_batch_field


class DataConfig(StrictModel):
    """Where the training images come from."""

    path: str | None = Field(None, description="Folder of images (e.g. from `data prepare`).")
    max_images: int | None = Field(None, ge=1, description="Use only the first N images.")


class ModelConfig(StrictModel):
    """Which generator/discriminator pair, and its size."""

    arch: str = "fastgan"
    size: int = Field(64, description="Image side in px (a power of two).")
    z_dim: int = Field(128, ge=1)
    g_channels: int | None = Field(
        None, ge=1, description="Generator width (see the architecture); None: its default."
    )
    d_channels: int | None = Field(
        None, ge=1, description="Discriminator width (see the architecture); None: its default."
    )
    max_channels: int = Field(512, ge=1)

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str) -> str:
        from deepfake_lab.models import DISCRIMINATORS, GENERATORS

        if v not in GENERATORS or v not in DISCRIMINATORS:
            raise ValueError(
                f"unknown architecture {v!r}; choose one of: {', '.join(GENERATORS.names())}"
            )
        return v

    @field_validator("size")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v < 8 or v & (v - 1):
            raise ValueError(f"must be a power of two >= 8, got {v}")
        return v


class PerceptualConfig(StrictModel):
    """A perceptual term: on reconstructions for autoencoders (``--arch vae``), as feature
    matching of fakes against reals for the other generators (``losses.perceptual``)."""

    net: str | None = Field(
        None, description="resnet56-cifar | vgg16 | torchscript | discriminator; None: off."
    )
    layers: list[int] | None = Field(None, description="Taps to use (indices); None: all.")
    weight: float = Field(1.0, ge=0.0, description="Weight of the term in G's loss.")
    weights: str | None = Field(None, description="The network's weights file.")
    trust_torchscript: bool = Field(
        False, description="net=torchscript runs the file's code: set true only if you trust it."
    )

    @field_validator("net")
    @classmethod
    def _known_net(cls, v: str | None) -> str | None:
        from deepfake_lab.losses.perceptual import PERCEPTUAL_NETS

        if v is not None and v not in PERCEPTUAL_NETS:
            raise ValueError(
                f"unknown network {v!r}; choose one of: {', '.join(PERCEPTUAL_NETS.names())}"
            )
        return v


class AutoencoderLossConfig(StrictModel):
    """The terms of an autoencoder generator's loss (``--arch vae``): the ELBO (pixel L1 and
    KL, the KL per pixel so that weight 1 is the ELBO's balance) plus the adversarial term."""

    recon_l1: float = Field(1.0, ge=0.0, description="Weight of the pixel L1 reconstruction.")
    kl: float = Field(1.0, ge=0.0, description="Weight of KL(q(z|x) || N(0, I)) per pixel.")
    adversarial: float = Field(
        0.05, ge=0.0, description="Weight of the adversarial loss on prior samples."
    )


class LossConfig(StrictModel):
    """Adversarial loss, the R1 penalty on reals, the perceptual term and an autoencoder's
    terms."""

    kind: Literal["nonsat", "hinge"] = "nonsat"
    r1_gamma: float = Field(0.1, ge=0.0, description="R1 weight; 0 disables it.")
    r1_interval: int = Field(16, ge=1, description="Lazy R1: apply every k D steps (scaled by k).")
    perceptual: PerceptualConfig = PerceptualConfig()
    vae: AutoencoderLossConfig = AutoencoderLossConfig()


class AugmentConfig(StrictModel):
    """DiffAugment on every image D sees (real and fake), plus dataset x-flips; with
    ``ada_target`` set, each image is augmented only with an adaptive probability p (ADA's
    control loop, Karras et al. 2020, over DiffAugment's differentiable operations)."""

    policy: str = "color,translation,cutout"
    xflip: bool = True
    ada_target: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="ADA: raise p while the share of reals D scores positive (r_t) is above "
        "this (0.6 in the paper), lower it below; None: always augment.",
    )
    ada_kimg: float = Field(100.0, gt=0, description="ADA: kimg for p to go from 0 to 1.")
    ada_interval: int = Field(4, ge=1, description="ADA: adjust p every N steps.")

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, v: str) -> str:
        from deepfake_lab.augment.diffaugment import parse_policy

        try:
            parse_policy(v)
        except UserError as exc:
            raise ValueError(str(exc)) from None
        return v


class OptimConfig(StrictModel):
    """Adam for both networks."""

    g_lr: float = Field(2e-4, gt=0)
    d_lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.99)
    eps: float = Field(1e-8, gt=0)


class EmaConfig(StrictModel):
    """Exponential moving average of G, used for samples and evaluation."""

    half_life_kimg: float = Field(2.0, ge=0, description="0 disables EMA (G_ema = G).")
    rampup: float | None = Field(
        0.05, ge=0, description="Half-life capped at rampup * kimg seen, as in StyleGAN2-ADA."
    )


class TrainConfig(StrictModel):
    """Length, batch, device, precision."""

    kimg: float = Field(100.0, gt=0, description="Training length in thousands of images shown.")
    batch: int = global_batch_field(32)
    sync_batchnorm: bool = SYNC_BATCHNORM
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = Field(
        True,
        description="bfloat16 autocast where the device computes it natively: CUDA, and CPUs "
        "with AVX512-BF16 or AMX (about 1.5x faster per step there); fp32 elsewhere.",
    )
    deterministic: bool = Field(
        True,
        description="Deterministic kernels (bit-exact reruns on CPU); False lets cuDNN pick "
        "the fastest, non-deterministic algorithms on CUDA.",
    )
    threads: int | None = Field(None, ge=1, description="CPU threads; default: all cores.")
    max_minutes: float | None = Field(
        None, gt=0, description="Stop (with a checkpoint) after this much training time."
    )
    max_cpu_minutes: float | None = Field(
        None,
        gt=0,
        description="Stop (with a checkpoint) after this much CPU time of the training "
        "process in this session (all its threads): a budget that stays fair when several "
        "runs share a machine.",
    )
    progressive: bool = Field(
        False,
        description="Progressive resolution: start at progressive_start px and grow to "
        "model.size with fade-in (dcgan, stylegan2).",
    )
    progressive_start: int = Field(8, description="First resolution (a power of two).")
    progressive_kimg: float = Field(
        20.0, gt=0, description="kimg a resolution phase (the first half fades it in)."
    )


class ScheduleConfig(StrictModel):
    """How often to log, draw samples and checkpoint (in kimg)."""

    log_kimg: float = Field(1.0, gt=0)
    sample_kimg: float = Field(5.0, gt=0)
    checkpoint_kimg: float = Field(10.0, gt=0)
    keep_checkpoints: int = Field(3, ge=1)
    grid: int = Field(8, ge=1, le=32, description="Sample grid is grid x grid images.")


class MetricsConfig(StrictModel):
    """Generator metrics measured during training (off unless ``every_kimg`` is set)."""

    every_kimg: float | None = Field(None, gt=0, description="Evaluate every N kimg.")
    metrics: str = Field("fid,kid", description="Comma list of fid, kid, pr, dc, is.")
    features: str = Field("resnet56-cifar", description="Feature space (registry name).")
    weights: str | None = Field(None, description="Weights file of the feature extractor.")
    trust_torchscript: bool = Field(
        False,
        description="features=torchscript: the weights file is a TorchScript module, which "
        "runs code when loaded; set true only for a file you trust.",
    )
    num: int = Field(1000, ge=2, description="Generated images per evaluation.")
    ref: str | None = Field(None, description="Reference image folder; default: data.path.")
    best: str | None = Field(
        "fid", description="Result key that picks checkpoints/best.pt (None: no best)."
    )
    cache_dir: str | None = Field(None, description="Reference statistics cache folder.")


class RunConfig(StrictModel):
    """Where the run folder goes."""

    out: str = "runs"
    name: str = "gan"


class GanConfig(StrictModel):
    """Everything that defines a GAN training run."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    augment: AugmentConfig = AugmentConfig()
    optim: OptimConfig = OptimConfig()
    ema: EmaConfig = EmaConfig()
    train: TrainConfig = TrainConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    metrics: MetricsConfig = MetricsConfig()
    run: RunConfig = RunConfig()
