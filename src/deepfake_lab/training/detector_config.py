"""The detector training config: every knob of ``deepfake-lab train detector``.

Common choices have flags (``--real``, ``--fake``, ``--arch``, ``--size``, ``--epochs``,
``--out``, ``--init``, ``--freeze``); everything else goes through ``--config``/``--set``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from deepfake_lab.config import StrictModel
from deepfake_lab.errors import UserError
from deepfake_lab.training.parallel_fields import SYNC_BATCHNORM, global_batch_field

if TYPE_CHECKING:
    from deepfake_lab.augment.resample import ResampleChain


class DetectorDataConfig(StrictModel):
    """Real and fake images, and how they are split."""

    real: list[str] = Field(default_factory=list, description="Folders of real faces.")
    fake: list[str] = Field(default_factory=list, description="Folders of fakes (one source each).")
    manifest: str | None = Field(None, description="JSONL of path, label, source (instead).")
    manifest_outside: bool = Field(
        False,
        description="Accept manifest paths outside the manifest's folder (a manifest you "
        "trust); by default they are refused.",
    )
    val: float = Field(0.15, gt=0, lt=1, description="Share held out for validation.")
    max_images: int | None = Field(None, ge=2, description="Use at most N images in all.")
    reencode: str | None = Field(
        None, description="Re-encode both classes the same way after decoding, e.g. jpeg95."
    )
    native_size: Literal["check", "floor", "ignore"] = Field(
        "check",
        description="Classes that differ in native size (upscaled or not): check refuses "
        "them, floor brings every image down to the smallest native side first, ignore "
        "trains anyway.",
    )
    pseudo_fake: list[str] = Field(
        default_factory=list,
        description="Pseudo-fakes made from the real faces on the fly: sbi (self-blended "
        "face), sbi-mouth (self-blended lower face).",
    )
    val_pseudo_fake: list[str] = Field(
        default_factory=list,
        description="Pseudo-fake kinds of the validation split, which picks the best "
        "checkpoint and fits the threshold (empty: those of pseudo_fake). A kind not "
        "trained on makes validation a test of what carries over.",
    )
    pseudo_paired: bool = Field(
        True,
        description="Each real face in a batch brings its own pseudo-fake (the paper's "
        "batches); false: pseudo-fakes are drawn on their own.",
    )
    sbi_resample: Literal["bilinear", "mixed"] = Field(
        "bilinear",
        description="Resampling filters of the self-blends: bilinear (as the paper) or "
        "mixed (random filters, sometimes none, so softness is not the label).",
    )
    landmarks: Literal["auto", "dlib68", "yunet", "template"] = Field(
        "auto", description="Landmarks of the pseudo-fake masks (auto: the best installed)."
    )
    face_model: str | None = Field(None, description="YuNet ONNX file for landmarks=yunet.")

    @model_validator(mode="after")
    def _val_kinds_need_pseudo_fakes(self) -> DetectorDataConfig:
        if self.val_pseudo_fake and not self.pseudo_fake:
            raise ValueError("data.val_pseudo_fake needs data.pseudo_fake (--pseudo-fake)")
        return self

    @field_validator("pseudo_fake", "val_pseudo_fake", mode="before")
    @classmethod
    def _kinds(cls, v: Any) -> Any:
        from deepfake_lab.data.pseudo import check_kinds

        if isinstance(v, str):  # --set data.pseudo_fake=sbi
            v = [k.strip() for k in v.split(",") if k.strip()]
        if isinstance(v, list):
            try:
                return check_kinds([str(k) for k in v])
            except Exception as exc:  # UserError -> a pydantic validation message
                raise ValueError(str(exc)) from None
        return v


class DetectorModelConfig(StrictModel):
    """Which detector, its input size, its constructor arguments, and where its weights start.

    ``arch`` and ``size`` are the keys the GAN config uses for the same things.
    """

    arch: str = "resnet"
    size: int = Field(64, ge=8, description="Input side in px: images are resized to this.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Constructor arguments.")
    init: str | None = Field(
        None,
        description="Detector or GAN run folder or checkpoint, detector export, or released "
        "weights (meso4:DF) to start from.",
    )
    freeze: Literal["none", "backbone"] = "none"
    tta: Literal["none", "flip"] = Field(
        "none",
        description="Test-time view for validation, calibration and every later scoring: "
        "none, or flip (the mean logit of each image and its mirror image; twice the "
        "inference cost).",
    )

    @field_validator("arch")
    @classmethod
    def _known(cls, v: str) -> str:
        from deepfake_lab.models.detectors import DETECTORS

        if v not in DETECTORS:
            raise ValueError(
                f"unknown detector {v!r}; choose one of: {', '.join(DETECTORS.names())}"
            )
        return v


class DetectorOptimConfig(StrictModel):
    """AdamW with a cosine learning-rate schedule over the whole run."""

    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = Field(0, ge=0)


class DetectorAffineConfig(StrictModel):
    """Random rotation, zoom and shift of whole training images, every class alike
    (:class:`deepfake_lab.augment.geometry.RandomAffine`); off while ``p`` is 0."""

    p: float = Field(0.0, description="Chance of a warp per image.")
    degrees: float = Field(8.0, description="Rotation range, +- degrees.")
    scale: tuple[float, float] = Field((0.9, 1.1), description="Zoom range (log-uniform).")
    shift: float = Field(0.04, description="Shift range, +- share of the side.")

    @model_validator(mode="after")
    def _ranges(self) -> DetectorAffineConfig:
        from deepfake_lab.augment.geometry import RandomAffine

        try:  # the op owns its ranges: one place says what is allowed
            RandomAffine(**self.model_dump())
        except UserError as exc:
            raise ValueError(str(exc)) from None
        return self


class DetectorAugmentConfig(StrictModel):
    """Robustness augmentation of training images (blur, JPEG, resize, flip, colour), and
    the optional affine jitter (``augment.affine``)."""

    enabled: bool = True
    strength: float = Field(1.0, ge=0, description="Scales every probability and range.")
    affine: DetectorAffineConfig = DetectorAffineConfig()


class DetectorResampleConfig(StrictModel):
    """The resampling chain every training image goes through, real, fake and pseudo-fake
    alike, so that neither size history nor codec is a label (``augment.resample``)."""

    enabled: bool = True
    p_resize: float = Field(0.5, ge=0, le=1, description="Chance of a resize round trip.")
    scale: tuple[float, float] = Field(
        (0.5, 2.0), description="Scale factor range (log-uniform); < 1 down-up, > 1 up-down."
    )
    p_jpeg: float = Field(0.5, ge=0, le=1, description="Chance of a JPEG round trip.")
    jpeg_quality: tuple[int, int] = Field((60, 100), description="JPEG quality range.")
    p_h264: float = Field(
        0.0, ge=0, le=1, description="Chance of an H.264 intra-frame round trip (video codec)."
    )
    h264_crf: tuple[int, int] = Field(
        (18, 36), description="H.264 rate factor range, 0-51 (23: x264's default)."
    )

    def chain(self) -> ResampleChain:
        """The op these settings describe (it owns the ranges' checks)."""
        from deepfake_lab.augment.resample import ResampleChain

        return ResampleChain(
            p_resize=self.p_resize,
            scale_low=self.scale[0],
            scale_high=self.scale[1],
            p_jpeg=self.p_jpeg,
            jpeg_low=self.jpeg_quality[0],
            jpeg_high=self.jpeg_quality[1],
            p_h264=self.p_h264,
            crf_low=self.h264_crf[0],
            crf_high=self.h264_crf[1],
        )

    @model_validator(mode="after")
    def _ranges(self) -> DetectorResampleConfig:
        try:
            self.chain()
        except UserError as exc:
            raise ValueError(str(exc)) from None
        return self


class DetectorAdvConfig(StrictModel):
    """Adversarial training (``--adv-train``): part of each batch replaced by PGD examples.

    Budgets are on the [0, 1] pixel scale: ``eps=4/255`` lets each channel of each pixel move
    by up to 4 grey levels (on the model's [-1, 1] inputs that is 8/255). YAML and ``--set``
    accept a fraction written as ``4/255``.
    """

    enabled: bool = False
    eps: float = Field(4 / 255, gt=0, le=1, description="L-inf budget, [0, 1] pixel scale.")
    steps: int = Field(3, ge=1, description="PGD steps per crafted batch.")
    step_size: float | None = Field(
        None, gt=0, description="PGD step on the [0, 1] pixel scale; None: 2.5 * eps / steps."
    )
    ratio: float = Field(
        0.5, gt=0, le=1, description="Share of each batch replaced by PGD examples (rounded up)."
    )

    @field_validator("eps", "step_size", mode="before")
    @classmethod
    def _fraction(cls, v: Any) -> Any:
        # "4/255" reads better than 0.01568627 and is how budgets are quoted in papers.
        if isinstance(v, str) and "/" in v:
            num, _, den = v.partition("/")
            try:
                return float(num) / float(den)
            except (ValueError, ZeroDivisionError):
                raise ValueError(f"not a number or a fraction like 4/255: {v!r}") from None
        return v


class DetectorTrainConfig(StrictModel):
    """Length, batch, early stopping, device."""

    epochs: int = Field(10, ge=1)
    batch: int = global_batch_field(64)
    sync_batchnorm: bool = SYNC_BATCHNORM
    patience: int = Field(3, ge=1, description="Stop after N epochs without a better val AUC.")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    deterministic: bool = True
    threads: int | None = Field(None, ge=1)
    max_minutes: float | None = Field(None, gt=0)
    keep_checkpoints: int = Field(2, ge=1)
    precise_bn_images: int = Field(
        512,
        ge=0,
        description="Training images (augmented) that BatchNorm's running statistics are "
        "recomputed from before each validation; 0: keep the running average.",
    )


class DetectorSeamConfig(StrictModel):
    """Blend-boundary supervision (``training.seam``): with pseudo-fakes, an extra 1x1 head
    on the detector's last feature map learns where each image was blended (Face X-ray's
    boundary), so that the seam, not softness alone, explains "fake"."""

    weight: float = Field(
        0.0, ge=0, description="Weight of the boundary loss beside the BCE; 0: off."
    )


class DetectorAverageConfig(StrictModel):
    """Weight averaging (``training.weight_average``): validation, the best checkpoint and
    every score use the average of the weights along training instead of the last step's."""

    method: Literal["none", "uniform", "ema"] = Field(
        "none",
        description="uniform: equal weight to every step from start_epoch on (SWA/SWAD); "
        "ema: exponential moving average; none: the last step's weights.",
    )
    start_epoch: float = Field(1.0, ge=0, description="uniform: average steps after this epoch.")
    half_life_epochs: float = Field(1.0, gt=0, description="ema: half-life in epochs.")


class DetectorCalibrationConfig(StrictModel):
    """How the decision threshold is set on the validation split."""

    method: Literal["eer", "fpr"] = "eer"
    target_fpr: float = Field(0.01, gt=0, lt=1, description="With method=fpr.")


class DetectorRunConfig(StrictModel):
    out: str = "runs"
    name: str = "detector"


class DetectorConfig(StrictModel):
    """Everything that defines a detector training run."""

    # Older detector configs (and the configs stored in their checkpoints) said model.name
    # and data.size.
    renamed_keys: ClassVar[dict[str, str]] = {"model.name": "model.arch", "data.size": "model.size"}

    data: DetectorDataConfig = DetectorDataConfig()
    model: DetectorModelConfig = DetectorModelConfig()
    optim: DetectorOptimConfig = DetectorOptimConfig()
    augment: DetectorAugmentConfig = DetectorAugmentConfig()
    resample: DetectorResampleConfig = DetectorResampleConfig()
    adv: DetectorAdvConfig = DetectorAdvConfig()
    train: DetectorTrainConfig = DetectorTrainConfig()
    seam: DetectorSeamConfig = DetectorSeamConfig()
    average: DetectorAverageConfig = DetectorAverageConfig()
    calibration: DetectorCalibrationConfig = DetectorCalibrationConfig()
    run: DetectorRunConfig = DetectorRunConfig()

    @model_validator(mode="after")
    def _averaging_needs_precise_bn(self) -> DetectorConfig:
        from deepfake_lab.training.weight_average import check_averaging

        check_averaging(self.average.method, self.train.precise_bn_images)
        return self
