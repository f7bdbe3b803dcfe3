"""Progressive resolution: the schedule, growing networks, and exact resume across a step."""

from __future__ import annotations

import json

import pytest
import torch

from deepfake_lab.errors import UserError
from deepfake_lab.models import build_discriminator, build_generator
from deepfake_lab.runs.checkpoint import load_checkpoint
from deepfake_lab.training.progressive import ProgressiveSchedule, faded_reals
from tiny_configs import train_tiny_gan


def test_schedule_fades_each_resolution_in_then_holds_it() -> None:
    s = ProgressiveSchedule(4, 16, 1.0)
    assert s.resolutions == [4, 8, 16]
    at = [s.at(n) for n in (0, 999, 1000, 1250, 1500, 1999, 2000, 2250, 3000, 10**6)]
    assert at == [
        (4, 1.0), (4, 1.0), (8, 0.0), (8, 0.5), (8, 1.0), (8, 1.0), (16, 0.0), (16, 0.5),
        (16, 1.0), (16, 1.0),
    ]  # fmt: skip
    with pytest.raises(UserError, match="power of two"):
        ProgressiveSchedule(6, 16, 1.0)


def test_faded_reals_are_the_images_the_generator_can_make() -> None:
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(faded_reals(x, 16, 1.0), x)
    low = faded_reals(x, 4, 1.0)
    assert torch.equal(low, low[:, :, ::4, ::4].repeat_interleave(4, 2).repeat_interleave(4, 3))
    assert torch.allclose(low.mean(), x.mean(), atol=1e-6)  # area downsampling keeps the mean
    half = faded_reals(x, 8, 0.5)
    assert torch.allclose(half, (faded_reals(x, 4, 1.0) + faded_reals(x, 8, 1.0)) / 2, atol=1e-6)


@pytest.mark.parametrize("arch", ["dcgan", "stylegan2"])
def test_growing_networks_at_full_size_are_the_plain_networks(arch) -> None:
    kw = {"size": 16, "channels": 4, "max_channels": 16}
    torch.manual_seed(0)
    g = build_generator(arch, z_dim=8, **kw, **({"progressive": True} if arch == "dcgan" else {}))
    d = build_discriminator(arch, **kw, progressive=True).eval()
    g.eval()
    z = torch.randn(3, 8)
    full, logits = g(z), d(g(z))
    g.set_resolution(8, 0.3)
    d.set_resolution(8, 0.3)
    small = g(z)
    assert small.shape == full.shape and not torch.allclose(small, full)
    assert torch.equal(small, small[:, :, ::2, ::2].repeat_interleave(2, 2).repeat_interleave(2, 3))
    g.set_resolution(16, 1.0)
    d.set_resolution(16, 1.0)
    assert torch.equal(g(z), full) and torch.equal(d(full), logits)


def _train(tmp_path, data, name, kimg, arch="dcgan", resume=None):
    extra = ["train.progressive=true", "train.progressive_start=4", "train.progressive_kimg=0.016"]
    extra.append("schedule.checkpoint_kimg=0.008")
    return train_tiny_gan(tmp_path, data, name, kimg, arch, extra, resume)


@pytest.mark.parametrize("arch", ["dcgan", "stylegan2"])
def test_progressive_run_grows_and_resumes_exactly_across_a_growth_step(
    tmp_path, tiny_faces, arch
) -> None:
    # 4 px for 16 images, then 8 px faded in over 8 and held for 8, then 16 px the same way:
    # the resumed run stops at 20 images, mid-fade (8 px at alpha 0.5).
    straight = _train(tmp_path, tiny_faces, "straight", 0.04, arch)
    rows = [json.loads(x) for x in (straight.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {r["Progressive/res"] for r in rows} >= {4.0, 8.0}
    half = _train(tmp_path, tiny_faces, "half", 0.02, arch)
    assert ProgressiveSchedule(4, 16, 0.016).at(half.nimg) == (8, 0.5)
    from deepfake_lab.models.generators.loading import load_generator

    g = load_generator(half.checkpoint).model  # generate from a mid-growth checkpoint
    stored = load_checkpoint(half.checkpoint)["progressive"]
    assert (g.res, g.alpha) == (stored["res"], stored["alpha"]) and g.res < 16
    resumed = _train(tmp_path, tiny_faces, "half", 0.04, arch, resume="auto")
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    assert a["progressive"] == b["progressive"] == {"res": 16, "alpha": 0.5}
    for key in ("G", "D", "G_ema"):
        for name, t in a[key].items():
            assert torch.equal(t, b[key][name]), f"{key}.{name}"
    assert "progressive: 4 px -> 8 px -> 16 px" in (straight.run_dir / "log.txt").read_text()


def test_architectures_that_cannot_grow_are_refused(tmp_path, tiny_faces) -> None:
    with pytest.raises(UserError, match="fastgan cannot grow"):
        _train(tmp_path, tiny_faces, "x", 0.008, "fastgan")
