"""Video-level evaluation: per-video scores from the faces of labelled videos."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from avtools import face_clip
from conftest import shared_path
from deepfake_lab.errors import UserError
from deepfake_lab.evaluation.video_eval import evaluate_videos, split_labelled
from deepfake_lab.video.scan import AGGREGATIONS


class BrightnessDetector:
    """A stand-in detector whose logit is the crop's mean brightness: known scores."""

    size, threshold, model_id = 32, 0.5, "brightness:test"

    def __init__(self) -> None:
        self.model = torch.nn.Linear(1, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3)) * 8.0

    def probabilities_from_logits(self, logits: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-logits))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Real clips of five FFHQ faces, fake clips of five others brightened (one barely),
    and a clip without a face."""
    faces = sorted(shared_path("data", "ffhq-128").glob("*.png"))[:10]
    root = tmp_path_factory.mktemp("clips")
    (root / "real").mkdir()
    (root / "swap").mkdir()
    for i, f in enumerate(faces[:5]):
        face_clip(root / "real" / f"r{i}.mp4", np.asarray(Image.open(f).convert("RGB")))
    for i, (f, gain) in enumerate(zip(faces[5:], (1.6, 1.5, 1.4, 1.3, 1.02), strict=True)):
        face_clip(root / "swap" / f"f{i}.mp4", np.asarray(Image.open(f).convert("RGB")), gain=gain)
    face_clip(root / "swap" / "blank.mp4", np.full((128, 128, 3), 128, np.uint8))
    return root


@pytest.fixture(scope="module")
def finder():
    from deepfake_lab.faces.detectors import FACE_DETECTORS

    return FACE_DETECTORS.build(
        "yunet", face_model=shared_path("models", "face_detection_yunet.onnx")
    )


def test_video_scores_are_aggregates_and_auc_is_over_videos(clips, finder):
    _, _, videos = split_labelled([clips / "real"], [clips / "swap"])
    assert sorted((v.name, label, src) for v, label, src in videos)[0] == ("blank.mp4", 1, "swap")
    r = evaluate_videos(BrightnessDetector(), videos, finder, "max-face", frames=4, n_boot=50)
    # The clip without a face is left out, with the reason; never counted right or wrong.
    assert [e["path"].rsplit("/", 1)[-1] for e in r["excluded"]] == ["blank.mp4"]
    rows = r["videos"]
    assert len(rows) == 10 and all(row["frames"] == 4 and row["faces"] >= 4 for row in rows)
    labels = [row["label"] for row in rows]
    probs = [row["probability"] for row in rows]
    assert r["video"]["roc_auc"] == pytest.approx(roc_auc_score(labels, probs))
    assert r["video"]["n"] == 10 and r["frame"]["n"] == sum(row["faces"] for row in rows)
    assert all(row["probability"] == row["scores"]["max-face"] for row in rows)
    assert set(r["aggregations"]) == set(AGGREGATIONS)
    lo, hi = r["video"]["intervals"]["roc_auc"]
    assert lo <= r["video"]["roc_auc"] <= hi
    # Brighter faces score higher: the two clearly brightened fakes outrank every real.
    real_max = max(p for p, y in zip(probs, labels, strict=True) if y == 0)
    fakes = sorted(p for p, y in zip(probs, labels, strict=True) if y == 1)
    assert fakes[-2] > real_max
    assert r["video"]["per_source"][0]["source"] == "swap"


def test_no_scorable_fake_is_a_clear_error(clips, finder):
    videos = [(clips / "real" / "r0.mp4", 0, "real"), (clips / "swap" / "blank.mp4", 1, "swap")]
    with pytest.raises(UserError, match="no fake video could be scored"):
        evaluate_videos(BrightnessDetector(), videos, finder, frames=2, n_boot=0)


def test_eval_detector_cli_reports_video_level_auc(clips, tmp_path):
    """`eval detector RUN --real DIR --fake DIR` with videos: a per-video table, the JSON
    under "videos", and the video ROC PNG."""
    from typer.testing import CliRunner

    from deepfake_lab.cli.app import app
    from detector_toys import make_toy_sets, train_toy

    run = train_toy(make_toy_sets(tmp_path / "toy", n=16), epochs=1)
    model = shared_path("models", "face_detection_yunet.onnx")
    out = tmp_path / "eval"
    res = CliRunner().invoke(
        app,
        [
            "eval", "detector", str(run), "--real", str(clips / "real"), "--fake",
            str(clips / "swap"), "--face-model", str(model), "--frames", "3", "--json",
            str(tmp_path / "e.json"), "--out", str(out), "--bootstrap", "20",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "per video" in res.output and "blank.mp4" in res.output
    doc = json.loads((tmp_path / "e.json").read_text())
    v = doc["videos"]
    assert "roc_auc" not in doc  # no image folders given: no image metrics
    assert v["video"]["n_real"] == 5 and v["video"]["n_fake"] == 5
    probs = [row["probability"] for row in v["videos"]]
    labels = [row["label"] for row in v["videos"]]
    assert v["video"]["roc_auc"] == pytest.approx(roc_auc_score(labels, probs))
    assert (out / "video_roc.png").is_file()


def test_a_faceforensics_tree_is_labelled_by_path(clips, finder, tmp_path):
    from deepfake_lab.evaluation.video_eval import layout_videos

    root = tmp_path / "ffpp"
    real = root / "original_sequences" / "youtube" / "c23" / "videos"
    fake = root / "manipulated_sequences" / "Deepfakes" / "c23" / "videos"
    masks = root / "manipulated_sequences" / "Deepfakes" / "masks" / "videos"
    for folder in (real, fake, masks):
        folder.mkdir(parents=True)
    for i in range(3):
        (real / f"00{i}.mp4").symlink_to(clips / "real" / f"r{i}.mp4")
        (fake / f"00{i}_01{i}.mp4").symlink_to(clips / "swap" / f"f{i}.mp4")
        (masks / f"00{i}_01{i}.mp4").symlink_to(clips / "swap" / f"f{i}.mp4")  # not faces
    videos = layout_videos(root)
    assert (
        sorted((label, src) for _, label, src in videos)
        == [(0, "real")] * 3 + [(1, "Deepfakes")] * 3
    )
    r = evaluate_videos(BrightnessDetector(), videos, finder, frames=2, n_boot=20)
    assert [row["source"] for row in r["video"]["per_source"]] == ["Deepfakes"]
    # Three videos a class: no bootstrap interval (it would be falsely narrow), and why.
    assert "intervals" not in r["video"] and "3 video(s)" in r["video"]["notes"][-1]
    with pytest.raises(UserError, match="no labelled videos"):
        layout_videos(clips / "real")
