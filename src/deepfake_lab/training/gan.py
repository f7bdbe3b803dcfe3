"""One GAN training step: adversarial loss, lazy R1, DiffAugment, G_ema, exact resume.

One step = one D update and one G update on a batch of ``train.batch`` images; progress is
counted in images shown (``nimg``; ``kimg`` = nimg / 1000). All randomness flows from three
explicit ``torch.Generator`` objects (data order, latents, augmentation) whose states go into
every checkpoint with the model and optimizer states, so N steps + N resumed steps give the
same weights, bit for bit on CPU, as 2N straight steps.

Data-parallel (torchrun): every rank holds the same generator states, draws the random
numbers of the whole global batch and keeps its slice (:mod:`deepfake_lab.sharded_random`),
BatchNorm normalises over the global batch and gradients are averaged before each optimizer
step, so N processes take the steps one process takes with the same ``train.batch``. Why not
``DistributedDataParallel``: one step runs D three times and R1 differentiates through D's
gradient (double backward), which DDP's gradient hooks do not support; StyleGAN2-ADA
averages gradients by hand for the same reason.
"""

from __future__ import annotations

import copy
import inspect
from contextlib import nullcontext
from typing import Any

import torch

from deepfake_lab import sharded_random
from deepfake_lab.augment.diffaugment import diff_augment
from deepfake_lab.data.dataset import FaceDataset
from deepfake_lab.devices import native_bf16
from deepfake_lab.errors import UserError
from deepfake_lab.losses.gan import GAN_LOSSES, r1_penalty
from deepfake_lab.losses.perceptual import PerceptualLoss, build_perceptual
from deepfake_lab.models import (
    DISCRIMINATORS,
    GENERATORS,
    build_discriminator,
    build_generator,
)
from deepfake_lab.runs.checkpoint import (
    capture_rng,
    restore_rng,
)
from deepfake_lab.sharded_random import ShardedGenerator
from deepfake_lab.training.common import grad_norm
from deepfake_lab.training.distributed import (
    SINGLE,
    DistContext,
    all_sum,
    average_gradients,
    check_batch,
    convert_batchnorm,
    gather_objects,
)
from deepfake_lab.training.ema import ema_beta, update_ema
from deepfake_lab.training.gan_config import GanConfig
from deepfake_lab.training.progressive import ProgressiveSchedule, faded_reals
from deepfake_lab.training.sampler import InfiniteSampler


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; the run stops without writing a checkpoint."""


def build_models(cfg: GanConfig) -> tuple[torch.nn.Module, torch.nn.Module]:
    """G and D as the config describes them (widths left at None take the arch's default).

    Raises:
        UserError: ``train.progressive`` with an architecture that cannot grow.
    """
    m = cfg.model
    g_kw: dict[str, Any] = {"size": m.size, "z_dim": m.z_dim, "max_channels": m.max_channels}
    d_kw: dict[str, Any] = {"size": m.size, "max_channels": m.max_channels}
    if m.g_channels is not None:
        g_kw["channels"] = m.g_channels
    if m.d_channels is not None:
        d_kw["channels"] = m.d_channels
    if cfg.train.progressive:
        g_cls, d_cls = GENERATORS.get(m.arch), DISCRIMINATORS.get(m.arch)
        if not (g_cls.supports_progressive and d_cls.supports_progressive):
            growing = [n for n in GENERATORS.names() if GENERATORS.get(n).supports_progressive]
            raise UserError(f"train.progressive: {m.arch} cannot grow; use {' or '.join(growing)}")
        # Only the halves that need extra layers for it (RGB heads) take the argument.
        for cls, kw in ((g_cls, g_kw), (d_cls, d_kw)):
            if "progressive" in inspect.signature(cls).parameters:
                kw["progressive"] = True
    return build_generator(m.arch, **g_kw), build_discriminator(m.arch, **d_kw)


def build_gan_perceptual(
    cfg: GanConfig, D: torch.nn.Module, device: torch.device
) -> PerceptualLoss | None:
    """The configured perceptual term (None when ``loss.perceptual.net`` is unset)."""
    p = cfg.loss.perceptual
    if p.net is None:
        return None
    loss = build_perceptual(p.net, p.weights, p.layers, p.trust_torchscript, discriminator=D)
    return loss.to(device)


def check_models(cfg: GanConfig) -> None:
    """Build G, D and the perceptual term once, so that a bad architecture, size or
    perceptual network (or its missing weights) fails before any folder is made."""
    _, D = build_models(cfg)
    build_gan_perceptual(cfg, D, torch.device("cpu"))
    t = cfg.train
    if t.progressive:
        ProgressiveSchedule(t.progressive_start, cfg.model.size, t.progressive_kimg)


class GanTrainer:
    """Holds the models, optimizers and generators of one run, and steps them.

    Args:
        cfg: the resolved config.
        dataset: training images (uint8, at ``cfg.model.size`` px).
        device: where to train.
        ctx: this process's place in a data-parallel run (alone by default).
    """

    def __init__(
        self,
        cfg: GanConfig,
        dataset: FaceDataset,
        device: torch.device,
        ctx: DistContext = SINGLE,
    ) -> None:
        if dataset.size != cfg.model.size:
            raise UserError(f"dataset is {dataset.size} px but model.size is {cfg.model.size}")
        self.cfg = cfg
        self.dataset = dataset
        self.device = device
        self.ctx = ctx
        self.local_batch = check_batch(cfg.train.batch, ctx)
        m = cfg.model
        G, D = build_models(cfg)
        if cfg.train.sync_batchnorm:  # before the optimizers: the swap makes new parameters
            G, D = convert_batchnorm(G, ctx), convert_batchnorm(D, ctx)
        self.G, self.D = G.to(device), D.to(device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        o = cfg.optim
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=o.g_lr, betas=o.betas, eps=o.eps)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=o.d_lr, betas=o.betas, eps=o.eps)
        self.loss = GAN_LOSSES.build(cfg.loss.kind)
        self.perceptual = build_gan_perceptual(cfg, self.D, device)
        seed = cfg.train.seed
        # Separate streams, so that e.g. changing the augmentation does not change data order.
        self.sampler = InfiniteSampler(len(dataset), seed=seed)
        self.gen_noise = torch.Generator(device).manual_seed(seed + 1)
        self.gen_aug = torch.Generator(device).manual_seed(seed + 2)
        # The same streams, drawing for the global batch and keeping this rank's rows.
        self.noise = ShardedGenerator(self.gen_noise, ctx.rank, ctx.world)
        self.aug = ShardedGenerator(self.gen_aug, ctx.rank, ctx.world)
        # G's own training noise (noise inputs, style mixing) from the latents' stream; set
        # after G_ema was copied, which samples in eval mode and draws nothing.
        self.G.set_noise_source(self.noise)
        # Fixed latents for sample grids, drawn on the CPU so grids match across devices.
        n = cfg.schedule.grid**2
        grid_gen = torch.Generator().manual_seed(seed + 3)
        self.grid_z = torch.randn(n, m.z_dim, generator=grid_gen).to(device)
        t = cfg.train
        self.schedule = (
            ProgressiveSchedule(t.progressive_start, m.size, t.progressive_kimg)
            if t.progressive
            else None
        )
        self.step = 0
        self.nimg = 0
        # ADA: the augmentation probability and the sign(D(real)) sums of the current interval.
        self.ada_p = 0.0
        self.ada_stats = torch.zeros(2, dtype=torch.float64)
        self._grow()
        self.use_amp = cfg.train.amp and native_bf16(device)

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly."""
        return {
            "config": self.cfg.model_dump(mode="json"),
            "step": self.step,
            "nimg": self.nimg,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "sampler": self.sampler.state_dict(),
            "gen_noise": self.gen_noise.get_state(),
            "gen_aug": self.gen_aug.get_state(),
            "rng": capture_rng(),
            # Each rank's global RNG (torch's default generator: no layer here draws from it
            # in training, but a user's might), so that N ranks resume exactly with N.
            "world_size": self.ctx.world,
            "rng_ranks": gather_objects(capture_rng(), self.ctx) if self.ctx.active else None,
            "ada": {"p": self.ada_p, "stats": self.ada_stats.clone()},
            # Where a progressive run stands, for loaders of this checkpoint's G_ema.
            "progressive": {"res": self.G_ema.res, "alpha": self.G_ema.alpha},
            "arch": {
                "generator": {"name": self.G.registry_name, "kwargs": self.G.init_kwargs},
                "discriminator": {"name": self.D.registry_name, "kwargs": self.D.init_kwargs},
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.sampler.load_state_dict(state["sampler"])
        self.gen_noise.set_state(state["gen_noise"])
        self.gen_aug.set_state(state["gen_aug"])
        ranks = state.get("rng_ranks")
        if ranks is not None and len(ranks) == self.ctx.world:
            restore_rng(ranks[self.ctx.rank])
        else:
            restore_rng(state["rng"])
            if self.ctx.rank:
                # Another process count than the checkpoint's: the ranks' global streams
                # restart from rank 0's state, offset so that they stay distinct.
                torch.manual_seed(self.cfg.train.seed + 7919 * self.ctx.rank + int(state["nimg"]))
        self.step = int(state["step"])
        self.nimg = int(state["nimg"])
        ada = state.get("ada")  # absent in checkpoints from before ADA: p starts at 0
        if ada is not None:
            self.ada_p, self.ada_stats = float(ada["p"]), ada["stats"].clone().double()
        self._grow()  # the resolution of the restored step, for grids drawn before the next

    # -- one step ------------------------------------------------------------------------
    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        aug = diff_augment(x, self.cfg.augment.policy, generator=self.aug)
        if self.cfg.augment.ada_target is None:
            return aug
        keep = sharded_random.rand(self.aug, x.shape[0]).to(x.device) >= self.ada_p
        return torch.where(keep[:, None, None, None], x, aug)

    def _adjust_ada(self, real_logits: torch.Tensor, stats: dict) -> None:
        """ADA's control loop: every ``ada_interval`` steps, move p by the interval's images
        over ``ada_kimg`` thousand, up while r_t = E[sign(D(real))] exceeds the target (D
        overfits), down below it."""
        a = self.cfg.augment
        if a.ada_target is None:
            return
        # Summed over the ranks: r_t is a statistic of the global batch, and p must move
        # the same way on every rank.
        self.ada_stats += all_sum(
            torch.tensor(
                [float(real_logits.detach().sign().sum()), real_logits.numel()],
                dtype=torch.float64,
            ),
            self.ctx,
        )
        if (self.step + 1) % a.ada_interval == 0:
            rt = float(self.ada_stats[0] / self.ada_stats[1])
            step = self.ada_stats[1].item() / (a.ada_kimg * 1000)
            self.ada_p = min(1.0, max(0.0, self.ada_p + (1 if rt > a.ada_target else -1) * step))
            self.ada_stats.zero_()
            stats["Aug/rt"] = torch.tensor(rt)
        stats["Aug/p"] = torch.tensor(self.ada_p)

    def _autocast(self):
        if self.use_amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def _real_batch(self) -> torch.Tensor:
        # The global batch's indices (one permutation per epoch, the same on every rank), of
        # which this rank takes its slice: the ranks' images never overlap.
        idx = self.sampler.next_batch(self.cfg.train.batch)[self.aug.rows(self.local_batch)]
        x = self.dataset.batch(idx, self.device)
        if self.cfg.augment.xflip:
            flip = sharded_random.rand(self.aug, x.shape[0]).to(self.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x

    def _latents(self, n: int) -> torch.Tensor:
        return sharded_random.randn(self.noise, n, self.cfg.model.z_dim).to(self.device)

    def _grow(self) -> tuple[int, float] | None:
        """Set G, D and G_ema to the schedule's resolution and fade for this step."""
        if self.schedule is None:
            return None
        res, alpha = self.schedule.at(self.nimg)
        for net in (self.G, self.D, self.G_ema):
            net.set_resolution(res, alpha)
        return res, alpha

    def train_step(self) -> dict[str, torch.Tensor]:
        """One D update and one G update; returns detached scalar statistics."""
        cfg, B = self.cfg, self.local_batch
        grown = self._grow()
        real = self._real_batch()
        if grown is not None:
            real = faded_reals(real, *grown)

        # --- D: real vs fake (+ lazy R1 on reals, + any auxiliary loss D defines) ---
        self.D.requires_grad_(True)
        do_r1 = cfg.loss.r1_gamma > 0 and self.step % cfg.loss.r1_interval == 0
        # One G forward serves both updates (as in the PyTorch DCGAN example): D sees it
        # detached, then G's step reuses its graph against the updated D.
        with self._autocast():
            fake = self.G(self._latents(B))
        real_in = real.detach().requires_grad_(do_r1)
        with self._autocast():
            real_aug = self._augment(real_in)
            real_logits, aux = self.D.forward_real(real_aug, self.aug)
            real_logits = real_logits.float()
            fake_logits = self.D(self._augment(fake.detach().float())).float()
            d_loss = self.loss.d_loss(real_logits, fake_logits)
        d_total = d_loss
        stats = {
            "Loss/D": d_loss.detach(),
            "D/real": real_logits.detach().mean(),
            "D/fake": fake_logits.detach().mean(),
        }
        self._adjust_ada(real_logits, stats)
        if aux is not None:
            d_total = d_total + aux.float()
            stats["Loss/D_aux"] = aux.detach().float()
        if do_r1:
            r1 = r1_penalty(real_logits, real_in)
            # Lazy regularisation: scale by the interval so the expected gradient is unchanged.
            d_total = d_total + r1 * (cfg.loss.r1_gamma / 2 * cfg.loss.r1_interval)
            stats["Loss/R1"] = r1.detach()
        self._check_finite(d_total, "D loss", per_rank=True)
        self.opt_D.zero_grad(set_to_none=True)
        d_total.backward()
        average_gradients(list(self.D.parameters()), self.ctx)
        stats["Grad/D"] = grad_norm(list(self.D.parameters()))
        self._check_finite(stats["Grad/D"], "D gradient norm")
        self.opt_D.step()

        # --- G: fool D (D's weights frozen so no grads are computed for them) ---
        self.D.requires_grad_(False)
        with self._autocast():
            g_loss = self.loss.g_loss(self.D(self._augment(fake)).float())
            g_loss = self._generator_terms(real, fake, g_loss, stats)
        self._check_finite(g_loss, "G loss", per_rank=True)
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        average_gradients(list(self.G.parameters()), self.ctx)
        stats["Grad/G"] = grad_norm(list(self.G.parameters()))
        self._check_finite(stats["Grad/G"], "G gradient norm")
        self.opt_G.step()
        stats["Loss/G"] = g_loss.detach()

        if grown is not None:
            stats["Progressive/res"] = torch.tensor(float(grown[0]))
            stats["Progressive/alpha"] = torch.tensor(grown[1])
        self.nimg += cfg.train.batch
        self.step += 1
        beta = ema_beta(cfg.train.batch, self.nimg, cfg.ema.half_life_kimg, cfg.ema.rampup)
        update_ema(self.G_ema, self.G, beta)
        return stats

    def _generator_terms(
        self, real: torch.Tensor, fake: torch.Tensor, g_adv: torch.Tensor, stats: dict
    ) -> torch.Tensor:
        """G's loss beyond fooling D: an autoencoder's ELBO terms (with the adversarial term
        weighted by ``loss.vae.adversarial``), and the perceptual term if configured."""
        cfg = self.cfg.loss
        ae = self.G.autoencode(real, self.noise)
        if ae is None:
            total = g_adv
            if self.perceptual is not None:
                fm = self.perceptual.feature_matching(real, fake)
                total = total + cfg.perceptual.weight * fm
                stats["Loss/feature_matching"] = fm.detach()
            return total
        recon, kl = ae
        l1 = (recon.float() - real).abs().mean()
        kl_pixel = kl.float().mean() / real[0].numel()  # per pixel, as the L1 is
        total = cfg.vae.adversarial * g_adv + cfg.vae.recon_l1 * l1 + cfg.vae.kl * kl_pixel
        stats["Loss/recon_L1"], stats["Loss/KL"] = l1.detach(), kl.detach().float().mean()
        if self.perceptual is not None:
            p = self.perceptual.distance(recon.float(), real)
            total = total + cfg.perceptual.weight * p
            stats["Loss/perceptual"] = p.detach()
        stats["Loss/G_adv"] = g_adv.detach()
        return total

    def _check_finite(self, value: torch.Tensor, what: str, per_rank: bool = False) -> None:
        # Checked before the optimizer step, so non-finite values never reach the weights.
        # Under torchrun only the gradient norms are checked: they are computed from the
        # averaged gradients, equal on every rank (and non-finite when any rank's loss is),
        # whereas one rank raising alone on its own loss would leave the others waiting.
        if self.ctx.active and per_rank:
            return
        if not torch.isfinite(value).item():
            raise TrainingDiverged(
                f"the {what} became {value.item()} at kimg {self.nimg / 1000:.3f} and the run "
                "stopped before updating the weights. Lower optim.g_lr/optim.d_lr or raise "
                "loss.r1_gamma, then --resume from a checkpoint"
            )

    @torch.no_grad()
    def sample_grid(self, batch: int = 64) -> torch.Tensor:
        """G_ema images for the fixed grid latents, float (n, 3, S, S) in [-1, 1] on the CPU."""
        out = []
        for z in self.grid_z.split(batch):
            with self._autocast():
                out.append(self.G_ema(z).float().cpu())
        return torch.cat(out).clamp_(-1, 1)
