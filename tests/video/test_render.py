"""``generate --video``: the latent walk, its MP4 encoding, watermark survival and numbers."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import shared_path
from deepfake_lab.cli.app import app
from deepfake_lab.errors import UserError
from deepfake_lab.models.generators.loading import load_generator
from deepfake_lab.models.latents import latents_for_seeds
from deepfake_lab.provenance.marking import ProvenanceOptions
from deepfake_lab.video import render, render_measure
from deepfake_lab.video.decode import iter_frames, probe
from render_toys import textured_generator_export
from tiny_configs import tiny_generator_export

runner = CliRunner()


@pytest.fixture(scope="module")
def textured(tmp_path_factory):
    return textured_generator_export(tmp_path_factory.mktemp("gen") / "export")


def test_slerp_keeps_the_norm_of_equal_norm_latents():
    a, b = torch.randn(64), torch.randn(64)
    b = b / b.norm() * a.norm()
    z = render.slerp(a, b, torch.linspace(0, 1, 9))
    assert torch.allclose(z.norm(dim=1), a.norm().expand(9), rtol=1e-5)
    assert torch.allclose(z[0], a, atol=1e-5) and torch.allclose(z[-1], b, atol=1e-5)
    lerp_mid = ((a + b) / 2).norm()
    assert lerp_mid < z[4].norm()  # the straight line dips towards the origin, slerp not


@pytest.mark.parametrize("loop", [False, True])
def test_walk_is_continuous_and_visits_the_keyframes(loop):
    keys = latents_for_seeds([0, 1, 2, 3], 128)
    z = render.walk_latents(keys, 61, loop=loop)
    assert z.shape == (61, 128)
    assert torch.allclose(z[0], keys[0])
    if not loop:
        assert torch.allclose(z[-1], keys[-1], atol=1e-5)
        assert torch.allclose(z[20], keys[1], atol=1e-5)  # 60 steps / 3 segments
    steps = (z[1:] - z[:-1]).norm(dim=1)
    if loop:  # the step from the last frame back to the first is a step like the others
        steps = torch.cat([steps, (z[0] - z[-1]).norm()[None]])
    key_gaps = torch.pdist(keys)
    assert steps.max() < key_gaps.min() / 5
    norms = z.norm(dim=1)
    assert norms.min() >= keys.norm(dim=1).min() - 1e-4
    assert norms.max() <= keys.norm(dim=1).max() + 1e-4


def test_frames_are_deterministic_for_a_seed(tmp_path):
    G = load_generator(tiny_generator_export(tmp_path / "g", size=16)).model
    keys = latents_for_seeds([5, 6, 7], G.z_dim)
    first = list(render.render_frames(G, render.walk_latents(keys, 12), 32, batch=5))
    again = list(render.render_frames(G, render.walk_latents(keys, 12), 32, batch=4))
    assert len(first) == 12 and first[0].shape == (32, 32, 3) and first[0].dtype == np.uint8
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_video_side_is_even_and_at_least_256():
    assert render.video_side(16) == 256 and render.video_side(64) == 256
    assert render.video_side(48) == 288 and render.video_side(512) == 512
    assert render.video_side(16, 64) == 64
    with pytest.raises(UserError):
        render.video_side(16, 63)


def test_walk_video_decodes_with_its_frames_watermark_metadata_and_numbers(textured, tmp_path):
    notes = []
    m = render.render_walk(
        textured, tmp_path / "out", frames=12, keyframes=3, seed=3, log=notes.append
    )
    path = tmp_path / "out" / render.VIDEO_NAME
    info = probe(path)
    assert (info.width, info.height, info.n_frames) == (256, 256, 12)  # 16 px upscaled 16x
    assert info.fps == pytest.approx(25)
    frames = list(iter_frames(path))
    assert len(frames) == 12
    h264 = render.encoder_available("libx264")
    assert info.codec == ("h264" if h264 else "mpeg4") and m["video"]["codec"] == info.codec
    assert bool(notes) == (not h264)  # the fallback says so
    # The watermark survives H.264 at the default CRF on the decoded frames.
    assert m["watermark_frames_verified"] >= 0.9
    with av.open(str(path)) as c:
        assert "AI-generated" in c.metadata["comment"]
        record = json.loads(c.metadata["description"])
    assert record["digital_source_type"].endswith("trainedAlgorithmicMedia")
    assert record["weights_sha256"] == m["model"]["weights_sha256"]
    # The smooth walk flickers far less than independent latents per frame.
    walk, base = m["consistency"], m["baseline"]
    assert walk["flicker"] is not None and base["flicker"] is not None
    assert walk["flicker"] < base["flicker"] / 3
    assert walk["landmark_jitter"] is None and "face model" in walk["landmark_jitter_skipped"]
    saved = json.loads((tmp_path / "out" / render.MANIFEST_NAME).read_text())
    assert saved["consistency"]["flicker"] == walk["flicker"]
    assert saved["walk"]["seeds"] == [3, 4, 5]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["walk.json", "walk.mp4"]


def test_fallback_to_mpeg4_and_unavailable_explicit_codec(textured, tmp_path, monkeypatch):
    monkeypatch.setattr(render, "encoder_available", lambda name: name != "libx264")
    with pytest.raises(UserError, match="libx264"):
        render.render_walk(textured, tmp_path / "a", frames=4, codec="h264", size=64)
    assert not (tmp_path / "a").exists()  # refused before anything is written
    notes = []
    m = render.render_walk(
        textured, tmp_path / "b", frames=6, size=64, baseline=False, log=notes.append
    )
    assert m["video"]["codec"] == "mpeg4" and "bit_rate" in m["video"]["quality"]
    assert probe(tmp_path / "b" / render.VIDEO_NAME).codec == "mpeg4"
    assert len(notes) == 1 and "MPEG-4" in notes[0]
    assert m["baseline"] is None


def test_interrupted_render_leaves_no_video(textured, tmp_path, monkeypatch):
    real = render.render_frames

    def interrupted(*args, **kwargs):
        for i, frame in enumerate(real(*args, **kwargs)):
            if i == 3:
                raise KeyboardInterrupt
            yield frame

    monkeypatch.setattr(render, "render_frames", interrupted)
    with pytest.raises(KeyboardInterrupt):
        render.render_walk(textured, tmp_path / "out", frames=8, size=64)
    assert list((tmp_path / "out").iterdir()) == []


def test_no_watermark_is_recorded(textured, tmp_path):
    m = render.render_walk(
        textured,
        tmp_path / "out",
        frames=4,
        size=64,
        baseline=False,
        provenance=ProvenanceOptions(watermark=False),
    )
    assert m["watermark_frames_verified"] is None
    assert m["provenance"]["opted_out"] == "--no-watermark"


def test_landmark_jitter_of_a_real_clip():
    finder_model = shared_path("models", "face_detection_yunet.onnx")
    video = shared_path("videos", "grid_bbaf2n_real.mpg")
    from deepfake_lab.faces.detectors import FACE_DETECTORS

    finder = FACE_DETECTORS.build("yunet", face_model=finder_model)
    r = render_measure.measure_video(video, finder=finder)
    assert r["face_frames"] >= 0.9 * r["frames"] and r["tracks"]
    assert r["landmark_jitter"] is not None and 0 < r["landmark_jitter"] < 0.1
    assert r["watermark_frames_verified"] is None  # nothing expected, nothing checked


def test_cli_generate_video(textured, tmp_path, monkeypatch):
    from deepfake_lab.cli import generate as cli_generate

    assert cli_generate._DEFAULT_CRF == render.DEFAULT_CRF
    out = tmp_path / "out"
    args = ["generate", str(textured), "--video", "--out", str(out), "--frames", "10"]
    res = runner.invoke(app, [*args, "--size", "64", "--keyframes", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "watermark verified in" in res.output and "baseline:" in res.output
    assert "landmark jitter skipped" in res.output
    manifest = json.loads((out / "walk.json").read_text())
    assert manifest["video"]["frames"] == 10 and manifest["walk"]["keyframes"] == 2
    # Video flags without --video, image flags with it, a codec that is not there: one line.
    res = runner.invoke(app, ["generate", str(textured), "--out", str(tmp_path / "x"), "--loop"])
    assert res.exit_code == 2 and "--loop only apply with --video" in res.output
    res = runner.invoke(app, [*args, "--num", "4"])
    assert res.exit_code == 2 and "error:" in res.output
    monkeypatch.setattr(render, "encoder_available", lambda name: False)
    res = runner.invoke(app, [*args[:3], "--out", str(tmp_path / "y"), "--codec", "h264"])
    assert res.exit_code == 2 and "no libx264 encoder" in res.output
