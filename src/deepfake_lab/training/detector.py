"""Training deepfake detectors: BCE, AdamW, cosine schedule, robustness augmentation,
validation ROC-AUC with early stopping, calibration, exact resume: the builders and the
trainer (one step, its state); the loop that validates, saves and stops is
``training.detector_loop``.

The machinery is the GAN trainer's (``training.common``, ``runs.checkpoint``,
``runs.run_dir``, ``training.logger``, ``training.sampler``); only the step and the
schedule are the detector's own. Progress is counted in steps; an epoch is
``ceil(n_train / batch)`` steps over a reshuffled training split.

Data-parallel (torchrun): the model is wrapped in ``DistributedDataParallel`` with BatchNorm
over the global batch; every rank draws the global batch's indices and one seed per step
(equal on all ranks), takes its slice, and augments each image with a generator of its own
keyed by (step seed, position in the global batch). So N processes train the model one
process trains with the same ``train.batch``. Rank 0 validates and shares the result.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from deepfake_lab.augment.geometry import RandomAffine
from deepfake_lab.augment.resample import Compose
from deepfake_lab.augment.robustness import RobustAugment
from deepfake_lab.data.detection import DetectionDataset
from deepfake_lab.data.pseudo import PseudoFakeSet
from deepfake_lab.errors import UserError
from deepfake_lab.models.detectors import DETECTORS, build_detector
from deepfake_lab.runs.checkpoint import (
    capture_rng,
    load_checkpoint,
    restore_rng,
)
from deepfake_lab.training.adversarial import eps_on_model_scale, pgd
from deepfake_lab.training.common import grad_norm
from deepfake_lab.training.detector_config import DetectorConfig
from deepfake_lab.training.distributed import (
    SINGLE,
    DistContext,
    all_mean,
    all_sum,
    average_gradients,
    check_batch,
    convert_batchnorm,
    gather_objects,
)
from deepfake_lab.training.precise_bn import recompute_batchnorm
from deepfake_lab.training.sampler import InfiniteSampler
from deepfake_lab.training.seam import SeamHead
from deepfake_lab.training.weight_average import WeightAverage

KIND = "detector"


def build_model(cfg: DetectorConfig) -> torch.nn.Module:
    """The detector the config names (``size`` defaults to ``model.size``)."""
    kwargs = {"size": cfg.model.size, **cfg.model.kwargs}
    try:
        return build_detector(cfg.model.arch, **kwargs)
    except TypeError as exc:
        raise UserError(f"model.kwargs do not fit detector {cfg.model.arch!r}: {exc}") from None


def init_weights(model: torch.nn.Module, source: str | Path) -> str:
    """Load matching weights from a detector or GAN run folder or checkpoint (a GAN's D), a
    detector export folder, or released weights (``meso4:DF``, see
    ``registry.published_detector_spec``); returns a one-line report."""
    from deepfake_lab.models.detectors.loading import load_detector_export, run_checkpoint
    from deepfake_lab.models.detectors.registry import published_detector_spec
    from deepfake_lab.models.export_format import is_export_folder

    spec = published_detector_spec(source)
    if spec is not None:
        name, weights = spec
        published = build_detector(
            name, weights=weights or DETECTORS.get(name).published_weights[0]
        )
        return str(model.init_from(published.state_dict()))
    path = Path(source)
    if path.is_dir() and is_export_folder(path):
        return str(model.init_from(load_detector_export(path).model.state_dict()))
    if path.is_dir():
        source = run_checkpoint(path)
    ckpt = load_checkpoint(source)
    state = ckpt["model"] if ckpt.get("kind") == KIND else ckpt.get("D")
    if state is None:
        raise UserError(f"{source} holds neither a detector nor a GAN discriminator")
    return str(model.init_from(state))


def build_augment(cfg: DetectorConfig) -> Compose | None:
    """The per-image training ops: the affine jitter when on (pose and alignment: where the
    camera and the face detector put the face), the resampling chain (hygiene: a random size
    history and codec for every image of every class), then the robustness degradations."""
    ops: list[Any] = []
    a = cfg.augment.affine
    # Left out while off, so that runs without it draw exactly the numbers they drew before.
    if a.p > 0:
        ops.append(RandomAffine(**a.model_dump()))
    r = cfg.resample
    if r.enabled:
        ops.append(r.chain())
    if cfg.augment.enabled:
        ops.append(RobustAugment(strength=cfg.augment.strength))
    return Compose(tuple(ops)) if ops else None


class DetectorTrainer:
    """Model, optimiser, schedule, sampler and augmentation generator of one run."""

    def __init__(
        self,
        cfg: DetectorConfig,
        train: DetectionDataset | PseudoFakeSet,
        val: DetectionDataset,
        device: torch.device,
        native_floor: int | None = None,
        ctx: DistContext = SINGLE,
    ) -> None:
        self.cfg, self.train_set, self.val_set, self.device = cfg, train, val, device
        self.ctx = ctx
        self.local_batch = check_batch(cfg.train.batch, ctx)
        # The detector only ever saw images floored to this side: scoring floors them too.
        self.native_floor = native_floor
        model = build_model(cfg)
        if cfg.train.sync_batchnorm:
            model = convert_batchnorm(model, ctx)
        self.model = model.to(device)
        self.model.freeze(cfg.model.freeze)
        # What the training step calls: the model itself, or its DDP wrapper (which
        # averages the gradients over the ranks during backward).
        self.net: torch.nn.Module = self.model
        if ctx.active:
            self.net = DistributedDataParallel(
                self.model,
                device_ids=[device.index] if device.type == "cuda" else None,
                broadcast_buffers=False,  # BatchNorm statistics are global already
            )
        o, t = cfg.optim, cfg.train
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.seam = self._seam_head(cfg, train, ctx)
        if self.seam is not None:  # after the model's, so their optimiser slots keep their order
            params += self.seam.parameters()
        self.opt = torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        self.steps_per_epoch = max(1, math.ceil(len(train) / t.batch))
        self.total_steps = t.epochs * self.steps_per_epoch
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self._lr_factor)
        self.sampler = InfiniteSampler(len(train), seed=t.seed)
        self.aug = build_augment(cfg)
        self.aug_rng = np.random.default_rng(t.seed + 2)
        # PGD random starts draw from their own generator, checkpointed, so adversarial
        # training resumes exactly and does not shift the other random streams.
        # Per rank: each crafts its own slice's examples.
        self.adv_gen = torch.Generator().manual_seed(t.seed + 3 + 7919 * ctx.rank)
        a = cfg.average
        self.average = (
            None
            if a.method == "none"
            else WeightAverage(
                self.model, a.method, self.steps_per_epoch, a.start_epoch, a.half_life_epochs
            )
        )
        self.step = 0
        self.best_auc = -1.0
        self.best_loss = math.inf
        self.bad_epochs = 0

    def _seam_head(
        self, cfg: DetectorConfig, train: DetectionDataset | PseudoFakeSet, ctx: DistContext
    ) -> SeamHead | None:
        """The boundary head when ``seam.weight > 0`` (see ``training.seam``)."""
        if cfg.seam.weight == 0:
            return None
        if not isinstance(train, PseudoFakeSet):
            raise UserError(
                "seam.weight > 0 learns where pseudo-fakes were blended: add --pseudo-fake sbi"
            )
        if cfg.model.freeze != "none":
            # The head is dropped at export: its loss only matters through the features it
            # shapes, and a frozen backbone's features do not move.
            raise UserError(
                "seam.weight > 0 shapes the backbone's features, which --freeze backbone "
                "keeps fixed: drop one of them"
            )
        return SeamHead(self.model, cfg.model.size, self.device)

    @property
    def eval_model(self) -> torch.nn.Module:
        """The network validation, the best checkpoint and scoring use: the weight average
        (``average.method``) once it holds a step, else the model being trained."""
        return self.model if self.average is None else self.average.eval_model(self.model)

    def _lr_factor(self, step: int) -> float:
        warm = self.cfg.optim.warmup_steps
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, self.total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "config": self.cfg.model_dump(mode="json"),
            "native_floor": self.native_floor,
            # "model" is what every reader scores with (with averaging, the average); the
            # trained weights and the average's count are kept beside it for resume.
            "model": self.eval_model.state_dict(),
            "train_model": None if self.average is None else self.model.state_dict(),
            "average": None if self.average is None else self.average.state_dict(),
            "arch": {"name": self.model.registry_name, "kwargs": self.model.rebuild_kwargs()},
            "seam_head": None if self.seam is None else self.seam.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "sampler": self.sampler.state_dict(),
            "aug_rng": self.aug_rng.bit_generator.state,
            "adv_gen": self.adv_gen.get_state(),
            "rng": capture_rng(),
            # Per-rank streams (global RNG: dropout; PGD starts), so that N ranks resume
            # exactly with N ranks.
            "world_size": self.ctx.world,
            "rank_states": (
                gather_objects(
                    {"rng": capture_rng(), "adv_gen": self.adv_gen.get_state()}, self.ctx
                )
                if self.ctx.active
                else None
            ),
            "step": self.step,
            "nimg": self.step * self.cfg.train.batch,
            "best_auc": self.best_auc,
            "best_loss": self.best_loss,
            "bad_epochs": self.bad_epochs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state.get("train_model") or state["model"])
        if self.average is not None and state.get("average"):
            self.average.load_state_dict(state["average"], state["model"])
        if self.seam is not None and state.get("seam_head") is not None:
            self.seam.load_state_dict(state["seam_head"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.sampler.load_state_dict(state["sampler"])
        self.aug_rng.bit_generator.state = state["aug_rng"]
        if "adv_gen" in state:  # checkpoints from before adversarial training lack it
            self.adv_gen.set_state(state["adv_gen"])
        restore_rng(state["rng"])
        ranks = state.get("rank_states")
        if ranks is not None and len(ranks) == self.ctx.world:
            restore_rng(ranks[self.ctx.rank]["rng"])
            self.adv_gen.set_state(ranks[self.ctx.rank]["adv_gen"])
        elif self.ctx.rank:  # another process count: distinct streams, said in the log
            torch.manual_seed(self.cfg.train.seed + 7919 * self.ctx.rank + int(state["step"]))
        self.step, self.best_auc = int(state["step"]), float(state["best_auc"])
        # Checkpoints from before the loss tie-break lack it: any tie then improves.
        self.best_loss = float(state.get("best_loss", math.inf))
        self.bad_epochs = int(state["bad_epochs"])

    def refresh_batchnorm(self) -> int:
        """Recompute BatchNorm's running statistics (precise BN, see ``training.precise_bn``)
        from ``train.precise_bn_images`` training images: the same images and augmentations
        at every epoch (a fixed permutation, one generator per position), drawn from no
        trainer stream, so resume stays exact. Every rank passes its slice of each global
        batch. Returns the number of layers recomputed."""
        n_img = self.cfg.train.precise_bn_images
        if n_img == 0:
            return 0
        seed, gb, b, r = self.cfg.train.seed, self.cfg.train.batch, self.local_batch, self.ctx.rank
        order = np.random.default_rng([seed, 0xB4]).permutation(len(self.train_set))
        n = max(1, round(min(n_img, len(order)) / gb)) * gb  # whole global batches
        order = np.resize(order, n)  # cycles through a set smaller than one batch

        def batches():
            for start in range(0, n, gb):
                pos = range(start + r * b, start + (r + 1) * b)
                gens = [np.random.default_rng([seed, 0xB4, p]) for p in pos]
                idx = torch.from_numpy(order[pos.start : pos.stop].astype(np.int64))
                yield self.train_set.batch(idx, self.device, augment=self.aug, rng=gens)[0]

        return recompute_batchnorm(self.eval_model, batches())

    def train_step(self) -> dict[str, float]:
        """One AdamW step on a batch of augmented training images (with ``adv.enabled``,
        part of the batch replaced by PGD examples: see ``_adversarial_``)."""
        self.model.train()
        b, r = self.local_batch, self.ctx.rank
        # The global batch (equal on every rank) and this rank's slice of it; each image
        # augments with its own generator, keyed by the step's seed and its global position.
        idx = self.sampler.next_batch(self.cfg.train.batch)[r * b : (r + 1) * b]
        seed = int(self.aug_rng.integers(2**63))
        gens = [np.random.default_rng([seed, p]) for p in range(r * b, (r + 1) * b)]
        if self.seam is None:
            x, y = self.train_set.batch(idx, self.device, augment=self.aug, rng=gens)
        else:
            assert isinstance(self.train_set, PseudoFakeSet)
            x, y, seams, known = self.train_set.seam_batch(
                idx, self.device, augment=self.aug, rng=gens
            )
        n_adv = self._adversarial_(x, y) if self.cfg.adv.enabled else 0
        if self.seam is not None:
            self.seam.capture(True)
        logits = self.net(x)
        bce = loss = self.model.loss(logits, y)
        seam_loss = None
        if self.seam is not None:
            # The mean over the global batch's known images, scaled so that DDP's (and the
            # head's) mean of the ranks' gradients is that mean's gradient.
            count = all_sum(known.sum().float().cpu(), self.ctx).clamp_min(1.0) / self.ctx.world
            seam_loss = self.seam.loss(seams, known, count=count.to(self.device))
            self.seam.capture(False)
            loss = bce + self.cfg.seam.weight * seam_loss
        # Alone, the loss is checked before backward. Under torchrun a rank may not raise
        # alone (the others would wait in the next collective): the averaged gradients are
        # the same on every rank, and a non-finite loss anywhere makes them non-finite.
        if not self.ctx.active:
            self._check_finite(loss, "loss")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.seam is not None:  # the head is not in DDP: average its gradients here
            average_gradients(self.seam.parameters(), self.ctx)
        gnorm = grad_norm([p for p in self.model.parameters() if p.requires_grad])
        self._check_finite(gnorm, "gradient norm")
        self.opt.step()
        self.sched.step()
        self.step += 1
        if self.average is not None:
            self.average.update(self.model, self.step)
        correct = ((logits.detach() > 0).float() == y).float()
        # Means over the ranks (each rank's are those of its slice).
        # Loss/train is the label's loss alone, comparable with runs without a seam head.
        loss_acc = all_mean(torch.stack([bce.detach(), correct.mean()]).cpu(), self.ctx)
        stats = {
            "Loss/train": loss_acc[0].item(),
            "Acc/train": loss_acc[1].item(),
            "Grad/norm": gnorm.item(),
            "LR": self.opt.param_groups[0]["lr"],
        }
        if seam_loss is not None:
            stats["Loss/seam"] = all_mean(seam_loss.detach().cpu(), self.ctx).item()
        if n_adv:
            stats["Acc/adv"] = correct[:n_adv].mean().item()  # this rank's, before the update
        return stats

    def _check_finite(self, value: torch.Tensor, what: str) -> None:
        if not torch.isfinite(value).item():
            raise UserError(
                f"the detector {what} became {value.item()} at step {self.step}; "
                "lower optim.lr and --resume from a checkpoint"
            )

    def _adversarial_(self, x: torch.Tensor, y: torch.Tensor) -> int:
        """Replace the first ``ceil(adv.ratio * B)`` images of ``x`` in place by PGD examples
        against the current model; returns how many.

        The sampler shuffles, so the first images are a random subset. PGD runs the model in
        eval mode (BatchNorm neither normalises with nor updates batch statistics of the
        crafted images) and takes gradients only w.r.t. the input, so the step's own
        ``zero_grad``/``backward`` see no trace of it; the model is back in train mode after.

        Args:
            x: (B, 3, H, W) augmented training images in [-1, 1], modified in place.
            y: (B,) labels, 1 = fake.
        """
        a = self.cfg.adv
        n = min(len(x), math.ceil(a.ratio * len(x)))
        eps = eps_on_model_scale(a.eps)  # config budgets are on the [0, 1] pixel scale
        step = None if a.step_size is None else eps_on_model_scale(a.step_size)
        self.model.eval()
        x[:n] = pgd(
            self.model, x[:n], y[:n], eps, steps=a.steps, step_size=step, generator=self.adv_gen
        )
        self.model.train()
        return n
