"""``verify`` on videos: the watermark of sampled frames (majority rule) and container tags."""

from __future__ import annotations

import json
import math

import av
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import shared_path
from deepfake_lab.cli.app import app
from deepfake_lab.errors import UserError
from deepfake_lab.provenance import verify_video as vv
from deepfake_lab.provenance.marking import ProvenanceOptions
from deepfake_lab.provenance.verify import verify_images
from deepfake_lab.provenance.watermark import embed, false_positive_bound, make_payload
from deepfake_lab.video import render
from render_toys import textured_generator_export

runner = CliRunner()
FRAMES = 12


@pytest.fixture(scope="module")
def walks(tmp_path_factory):
    """Walk videos of one textured generator: marked with an owner secret, and unmarked."""
    root = tmp_path_factory.mktemp("walks")
    export = textured_generator_export(root / "export")
    (root / "secret").write_bytes(b"owner secret")
    marked = render.render_walk(
        export,
        root / "marked",
        frames=FRAMES,
        keyframes=3,
        baseline=False,
        provenance=ProvenanceOptions(secret_file=root / "secret"),
    )
    render.render_walk(
        export,
        root / "plain",
        frames=FRAMES,
        keyframes=3,
        baseline=False,
        provenance=ProvenanceOptions(watermark=False),
    )
    return {
        "marked": root / "marked" / render.VIDEO_NAME,
        "plain": root / "plain" / render.VIDEO_NAME,
        "secret": root / "secret",
        "manifest": marked,
    }


def _strip_tags(src, dst):
    """Remux the video stream into a new MP4 without the container tags."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:  # the demuxer's flush packet
                continue
            packet.stream = stream
            out.mux(packet)
    return dst


def _noise_video(path, frames=8, side=64):
    rng = np.random.default_rng(0)
    imgs = (rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(frames))
    render.encode_video(imgs, path, side, codec=render.choose_codec())
    return path


def test_a_walk_verifies_as_ours_with_its_fingerprint_and_code(walks):
    r = vv.verify_video(walks["marked"], secret=walks["secret"].read_bytes())
    fp = walks["manifest"]["model"]["weights_sha256"][:8]
    assert r["kind"] == "video" and "error" not in r
    assert r["watermark"] and r["verdict"] == "deepfake-lab watermark"
    assert r["payload"]["fingerprint"] == fp and r["payload"]["keyed"]
    assert r["payload"]["code_valid"] is True
    assert r["frames_checked"] == FRAMES and r["frames_required"] == FRAMES // 2 + 1
    assert r["frames_marked"] >= r["frames_required"] and r["bit_errors"] <= r["budget"]
    assert [p["fingerprint"] for p in r["payloads"]] == [fp]
    # The same per-frame read as generate's survival measurement, on the same frames.
    assert r["frames_marked"] / FRAMES == walks["manifest"]["watermark_frames_verified"]
    meta = r["metadata"]
    assert meta["ours"] and meta["ai_generated"] and meta["source"] == "container-tags"
    assert meta["weights_sha256"].startswith(fp) and meta["watermarked"] is True
    assert "AI-generated" in meta["comment"] and r["c2pa"] is None and r["notes"] == []
    assert r["false_positive_bound"] <= 2 * false_positive_bound(1)
    assert r["false_positive_bound_independent"] < 1e-50
    wrong = vv.verify_video(walks["marked"], secret=b"an impostor")
    assert wrong["watermark"] and wrong["payload"]["code_valid"] is False
    few = vv.verify_video(walks["marked"], max_frames=5)
    assert few["frames_checked"] == 5 and few["watermark"]


def test_stripped_tags_still_verify_by_the_watermark(walks, tmp_path):
    stripped = _strip_tags(walks["marked"], tmp_path / "stripped.mp4")
    with av.open(str(stripped)) as c:
        assert "description" not in c.metadata and "comment" not in c.metadata
    r = vv.verify_video(stripped)
    assert r["watermark"] and r["verdict"] == "deepfake-lab watermark"
    assert r["payload"]["fingerprint"] == walks["manifest"]["model"]["weights_sha256"][:8]
    assert r["metadata"]["source"] is None and not r["metadata"]["ai_generated"]
    assert any("stripped" in n for n in r["notes"])


def test_no_watermark_video_is_tagged_but_not_marked(walks):
    r = vv.verify_video(walks["plain"])
    assert not r["watermark"] and r["frames_marked"] == 0 and r["payload"] is None
    assert r["metadata"]["ai_generated"] and r["metadata"]["watermarked"] is False
    assert r["verdict"] == "AI tag only (metadata, not proof)"
    assert any("--no-watermark" in n for n in r["notes"])


def test_a_video_we_did_not_make_has_neither(tmp_path):
    r = vv.verify_video(_noise_video(tmp_path / "noise.mp4"))
    assert not r["watermark"] and r["frames_marked"] == 0 and r["payloads"] == []
    assert r["frames_checked"] == 8 and r["metadata"]["source"] is None
    assert not r["metadata"]["ours"] and r["verdict"] == "none found"


def test_a_real_clip_has_neither():
    r = vv.verify_video(shared_path("videos", "grid_bbaf2n_real.mpg"), max_frames=16)
    assert r["frames_checked"] == 16 and "error" not in r
    assert not r["watermark"] and r["frames_marked"] == 0 and r["verdict"] == "none found"


def test_truncated_videos_are_per_file_errors(walks, tmp_path):
    data = walks["marked"].read_bytes()
    (tmp_path / "stub.mp4").write_bytes(data[:800])  # inside the index: cannot be opened
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])  # cut inside the frames
    stub = vv.verify_video(tmp_path / "stub.mp4")
    assert stub["verdict"] == "unreadable" and stub["frames_checked"] == 0
    assert "cut short" in stub["error"] and "\n" not in stub["error"]
    assert not stub["watermark"] and stub["metadata"] is None
    half = vv.verify_video(tmp_path / "half.mp4")
    assert "decoding stopped" in half["error"] and 0 < half["frames_checked"] < FRAMES
    # The frames read before the cut are good: their marks still count.
    assert half["watermark"] and "damaged file" in half["verdict"]


def test_majority_rule_and_its_bounds():
    assert [vv.required_frames(n) for n in (1, 2, 3, 64)] == [1, 2, 2, 33]
    p = false_positive_bound(1)
    any_dep, indep = vv.video_false_positive_bounds(64, 33)
    assert any_dep == pytest.approx(64 * p / 33) and any_dep < 2 * p
    assert 0 < indep < 1e-250
    _, two = vv.video_false_positive_bounds(3, 2)
    assert two == pytest.approx(3 * p**2 * (1 - p) + p**3)
    # Two payloads in one video: the majority one is reported, and 3 of 6 is not a majority.
    rng = np.random.default_rng(1)
    a, b = make_payload("aa" * 32), make_payload("bb" * 32)
    tally = vv.MarkTally()
    for payload in (a, a, b, a, b, None):
        img = rng.integers(40, 216, (64, 64, 3), dtype=np.uint8)
        tally.add(img if payload is None else embed(img, payload))
    assert tally.majority() == (a, 3) and tally.share(b) == pytest.approx(2 / 6)
    assert 3 < vv.required_frames(tally.frames)


def test_cli_verifies_images_and_videos_together(walks, tmp_path):
    from deepfake_lab.cli import verify as cli_verify

    assert cli_verify._DEFAULT_MAX_FRAMES == vv.DEFAULT_MAX_FRAMES
    folder = tmp_path / "media"
    folder.mkdir()
    (folder / "walk.mp4").write_bytes(walks["marked"].read_bytes())
    _strip_tags(walks["marked"], folder / "stripped.mp4")
    (folder / "plain.mp4").write_bytes(walks["plain"].read_bytes())
    _noise_video(folder / "noise.mp4")
    (folder / "cut.mp4").write_bytes(walks["marked"].read_bytes()[:800])
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(folder / "grey.png")
    args = ["verify", str(folder), "--json", str(tmp_path / "v.json")]
    res = runner.invoke(app, [*args, "--secret-file", str(walks["secret"]), "--max-frames", "6"])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "0 of 1 carry the deepfake-lab watermark" in out  # the image line, as before
    assert "2 of 5 videos carry the deepfake-lab watermark" in out
    assert "cut short" in out and "Traceback" not in res.output
    doc = json.loads((tmp_path / "v.json").read_text())
    [image] = doc["results"]
    assert image["path"].endswith("grey.png") and "kind" not in image
    videos = {r["path"].rsplit("/", 1)[-1]: r for r in doc["videos"]}
    assert sorted(videos) == ["cut.mp4", "noise.mp4", "plain.mp4", "stripped.mp4", "walk.mp4"]
    for name in ("walk.mp4", "stripped.mp4"):
        r = videos[name]
        assert r["watermark"] and r["payload"]["code_valid"] is True and r["frames_checked"] == 6
    assert videos["plain.mp4"]["verdict"].startswith("AI tag only")
    assert videos["noise.mp4"]["verdict"] == "none found"
    assert videos["cut.mp4"]["verdict"] == "unreadable"
    assert math.isfinite(videos["walk.mp4"]["false_positive_bound"])
    # A video alone: only the video line; a bad --max-frames: one line, exit 2.
    res = runner.invoke(app, ["verify", str(walks["plain"])])
    assert res.exit_code == 0 and "0 of 1 videos carry" in " ".join(res.output.split())
    res = runner.invoke(app, ["verify", str(walks["plain"]), "--max-frames", "0"])
    assert res.exit_code == 2 and "--max-frames" in res.output


def test_nothing_to_verify_is_a_user_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="no images or videos"):
        verify_images([tmp_path])
