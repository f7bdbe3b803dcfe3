"""Fusion: a calibrated stacker over member detectors that can say "uncertain"."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_lab.detect import detect_images
from deepfake_lab.errors import UserError
from deepfake_lab.models.detectors.loading import load_detector
from deepfake_lab.training.fusion import train_fusion
from detector_toys import make_toy_sets, run_toy_training


@pytest.fixture(scope="module")
def fused(tmp_path_factory):
    """Two tiny members (npr, resnet) on a toy set, fused on a second toy set."""
    root = tmp_path_factory.mktemp("fusion")
    sets = make_toy_sets(root / "train", n=24)
    members = [
        run_toy_training(sets, root / "runs", m, 2, m, kwargs="{width: 8}").run_dir
        for m in ("npr", "resnet")
    ]
    held = make_toy_sets(root / "held", n=24)
    run = train_fusion(
        members, [held / "real"], [held / "fake"], out=root / "runs", name="fusion", margin=50.0
    )
    return run, members, held


def test_fusion_run_loads_as_a_detector_with_every_member(fused):
    run, members, held = fused
    det = load_detector(run)
    assert det.identity["name"] == "fusion" and det.calibrated
    summary = json.loads((run / "fusion.json").read_text())
    assert [m["source"] for m in summary["members"]] == [str(m) for m in members]
    best_member = max(m["calibration_roc_auc"] for m in summary["members"])
    assert summary["calibration"]["roc_auc"] >= min(0.75, best_member - 0.05)
    assert (run / "index.html").is_file()
    # Its logit is the stacker over the members' calibrated logits.
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    a = det.model.analyse(x)
    expected = a["z"] @ det.model.stacker.weight[0] + det.model.stacker.bias
    assert torch.allclose(det.logits(x), expected, atol=1e-4)


def test_detect_reports_member_scores_and_calls_the_unfamiliar_uncertain(fused, tmp_path):
    run, _, held = fused
    odd = tmp_path / "odd"
    odd.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):  # saturated noise: nothing like a face the fusion was fitted on
        Image.fromarray(rng.choice([0, 255], (16, 16, 3)).astype(np.uint8)).save(odd / f"{i}.png")
    records = detect_images(run, [held / "real", odd], json_path=tmp_path / "r.json")
    by_dir = {"odd": [], "real": []}
    for r in records:
        by_dir["odd" if "/odd/" in r["path"] else "real"].append(r)
        assert set(r["members"]) == {m for m in load_detector(run).model.member_ids}
        assert all(0 <= v["probability"] <= 1 for v in r["members"].values())
    assert all(r["label"] == "uncertain" for r in by_dir["odd"])
    assert {r["reason"] for r in by_dir["odd"]} == {"unlike the images the fusion was fitted on"}
    in_dist = [r["label"] for r in by_dir["real"]]
    assert in_dist.count("uncertain") <= 3  # about 1% of familiar images by design
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["counts"]["uncertain"] >= 3


def test_members_that_confidently_disagree_make_it_uncertain(fused):
    run, _, _ = fused
    model = load_detector(run).model
    z = torch.tensor([[5.0, -5.0], [5.0, 4.0]])
    ood = torch.zeros(2)
    model.margin = 2.0
    labels = model.verdict(z, ood, torch.tensor([0.0, 9.0]), 0.5)
    assert labels[0] == ("uncertain", "members disagree") and labels[1] == ("fake", None)


def test_a_confident_member_overruled_by_the_stacker_makes_it_uncertain(fused):
    """A "real" verdict while one member is confidently "fake" (say, a member the stacker
    learnt to ignore) is no evidence: uncertain, naming the member; below the margin it
    stands."""
    run, _, _ = fused
    model = load_detector(run).model
    model.margin = 2.0
    second = model.member_info[1]["id"]
    z = torch.tensor([[0.5, 3.0], [0.5, 1.0], [-0.5, -3.0], [3.0, 2.5]])
    labels = model.verdict(z, torch.zeros(4), torch.tensor([-1.0, -1.0, 1.0, 1.0]), 0.0)
    assert labels[0] == ("uncertain", f"{second} confidently says otherwise")
    assert labels[1] == ("real", None)
    assert labels[2] == ("uncertain", f"{second} confidently says otherwise")
    assert labels[3] == ("fake", None)  # confident members that agree with the verdict


def test_fusion_needs_two_members(fused, tmp_path):
    run, members, held = fused
    with pytest.raises(UserError, match="at least two"):
        train_fusion(members[:1], [held / "real"], [held / "fake"], out=tmp_path)
    with pytest.raises(UserError, match="single detectors"):
        train_fusion([run, members[0]], [held / "real"], [held / "fake"], out=tmp_path)


def test_eval_detector_reports_the_uncertain_share(fused):
    from deepfake_lab.evaluation.detector_eval import evaluate_detector

    run, _, held = fused
    r = evaluate_detector(run, [held / "real"], [held / "fake"], robustness=False, n_boot=0)
    u = r["uncertain"]
    assert 0 <= u["share"] <= 1 and set(u) >= {"share_real", "share_fake", "reasons"}
    assert u["accuracy_decided"] is None or 0 <= u["accuracy_decided"] <= 1


def test_members_get_upscaled_inputs_close_to_the_file_loader():
    """A member larger than the fusion gets its input upscaled in the model; the filter must
    come near the loader's Lanczos (what the member sees alone), nearer than bilinear."""
    import cv2

    from deepfake_lab.models.detectors.fusion import resize_for

    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (32, 32, 3)).astype(np.float32), (0, 0), 1.0)
    img = np.clip(img * 3 - 255, 0, 255).astype(np.uint8)  # sharp edges, saturated areas
    lanczos = cv2.resize(img, (64, 64), interpolation=cv2.INTER_LANCZOS4)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    ref = torch.from_numpy(lanczos).permute(2, 0, 1)[None].float() / 127.5 - 1
    up = resize_for(x, 64)
    bilinear = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear")
    assert up.shape == (1, 3, 64, 64) and up.min() >= -1 and up.max() <= 1
    assert (up - ref).abs().mean() < 0.7 * (bilinear - ref).abs().mean()
    # Down: the area average, as the loader's INTER_AREA.
    assert torch.allclose(resize_for(ref, 32), torch.nn.functional.avg_pool2d(ref, 2))
