"""``--arch stylegan2``: truncation in W, style mixing, and ADA's adaptive probability."""

from __future__ import annotations

import json

import torch

from deepfake_lab.models import build_generator
from deepfake_lab.runs.checkpoint import load_checkpoint
from tiny_configs import GAN_TINY, train_tiny_gan


def _g():
    torch.manual_seed(0)
    return build_generator("stylegan2", size=16, z_dim=8, channels=4, max_channels=16)


def test_truncation_pulls_w_towards_its_running_mean() -> None:
    g = _g()
    g.train()
    for _ in range(50):  # the running mean of w is tracked in training mode
        g(torch.randn(16, 8))
    g.eval()
    z = torch.randn(4, 8)
    assert torch.equal(g.sample(z, 1.0), g(z))
    flat = g.sample(z, 0.0)  # every z gives the average face
    assert torch.allclose(flat, flat[:1].expand_as(flat), atol=1e-6)
    spread = lambda x: x.std(dim=0).mean().item()  # noqa: E731
    assert spread(g.sample(z, 0.5)) < spread(g(z))


def test_style_mixing_takes_coarse_styles_from_one_seed_and_fine_from_the_other() -> None:
    g = _g().eval()
    za, zb = torch.randn(1, 8), torch.randn(1, 8)
    assert torch.allclose(g.style_mix(za, zb, g.num_ws), g(za), atol=1e-6)  # all from a
    assert torch.allclose(g.style_mix(za, zb, 0), g(zb), atol=1e-6)  # all from b
    mixed = g.style_mix(za, zb, 2)
    assert not torch.allclose(mixed, g(za)) and not torch.allclose(mixed, g(zb))


def _train(tmp_path, data, name, kimg, extra=(), resume=None):
    return train_tiny_gan(tmp_path, data, name, kimg, "stylegan2", extra, resume)


def test_ada_control_loop_moves_p_by_the_sign_of_d_on_reals(tiny_faces) -> None:
    from deepfake_lab.config import build_config
    from deepfake_lab.data.dataset import FaceDataset
    from deepfake_lab.training.gan import GanTrainer
    from deepfake_lab.training.gan_config import GanConfig

    cfg = build_config(
        GanConfig,
        None,
        [*GAN_TINY, "model.arch=stylegan2", "augment.ada_target=0.6", "augment.ada_interval=2"],
    )
    t = GanTrainer(cfg, FaceDataset.from_folder(tiny_faces, 16), torch.device("cpu"))
    stats: dict = {}
    step = 8 / (100 * 1000)  # 2 steps x 4 reals over ada_kimg=100
    t._adjust_ada(torch.ones(4), stats)  # mid-interval: p holds
    assert t.ada_p == 0.0 and "Aug/rt" not in stats
    t.step = 1
    t._adjust_ada(torch.ones(4), stats)  # r_t = 1 > 0.6: D overfits, p rises
    assert t.ada_p == step and float(stats["Aug/rt"]) == 1.0
    t.step = 3
    t._adjust_ada(-torch.ones(4), stats)
    t.step = 5
    t._adjust_ada(-torch.ones(4), stats)  # r_t = -1 < 0.6: p falls, never below 0
    assert t.ada_p == 0.0


def test_ada_runs_logs_p_and_resumes_exactly(tmp_path, tiny_faces) -> None:
    ada = ["augment.ada_target=0.5", "augment.ada_interval=1", "augment.ada_kimg=0.1"]
    straight = _train(tmp_path, tiny_faces, "straight", 0.024, ada)
    rows = [json.loads(x) for x in (straight.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("Aug/p" in r for r in rows)
    _train(tmp_path, tiny_faces, "half", 0.012, ada)
    resumed = _train(tmp_path, tiny_faces, "half", 0.024, ada, resume="auto")
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    assert a["ada"]["p"] == b["ada"]["p"]
    for name, t in a["G"].items():
        assert torch.equal(t, b["G"][name]), name


def test_generate_truncates_in_w_and_draws_a_style_mix_row(tmp_path, tiny_faces) -> None:
    from typer.testing import CliRunner

    from deepfake_lab.cli.app import app

    run = _train(tmp_path, tiny_faces, "g", 0.008).run_dir
    runner = CliRunner()
    res = runner.invoke(app, ["generate", str(run), "--num", "2", "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["generate", str(run), "--style-mix", "3,7", "--out", str(tmp_path / "mix")]
    )
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "mix" / "style-mix.json").read_text())
    assert m["seeds"] == [3, 7] and len(m["crossovers"]) == 6  # 16 px: 5 style inputs
    assert (tmp_path / "mix" / "style-mix.png").is_file()
    bad = runner.invoke(
        app, ["generate", str(run), "--style-mix", "3", "--out", str(tmp_path / "b")]
    )
    assert bad.exit_code == 2 and "two seeds" in bad.output
