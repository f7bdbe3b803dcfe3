"""``evaluate_gan``: one feature pass per side, cached reference, generator vs folder parity."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_path
from deepfake_lab.errors import UserError
from deepfake_lab.evaluation.evaluate import evaluate_gan, metric_rows
from deepfake_lab.metrics.features import FEATURE_EXTRACTORS
from deepfake_lab.metrics.registry import parse_metrics
from fakes import TinyFeatures, TinyNonClassifier
from tiny_configs import tiny_generator_export


@pytest.fixture(autouse=True)
def _tiny_spaces(monkeypatch, tmp_path):
    # Registered for this test only, so the registry seen by other tests is unchanged.
    monkeypatch.setitem(FEATURE_EXTRACTORS._entries, "tiny-test", TinyFeatures)
    monkeypatch.setitem(FEATURE_EXTRACTORS._entries, "tiny-plain", TinyNonClassifier)
    monkeypatch.setenv("DEEPFAKE_LAB_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def export(tmp_path) -> Path:
    """A randomly initialised 16 px DCGAN generator as an export folder."""
    return tiny_generator_export(tmp_path / "export")


ALL = "fid,kid,pr,dc,is"


def test_a_folder_against_itself(tiny_faces, tmp_path):
    res = evaluate_gan(tiny_faces, tiny_faces, metrics=ALL, features="tiny-test", batch=5)
    assert abs(res["fid"]) < 1e-9 and res["fd_tiny"] == res["fid"]
    assert res["feature_space"] == "tiny-test" and res["label"] == "FD-TINY"
    assert res["precision"] == res["recall"] == res["coverage"] == 1.0
    assert res["density"] == pytest.approx(1.0)
    # Unbiased: slightly negative for one set against itself, by O(1 / n) (n = 24 here).
    assert -1 < res["kid_mean"] < 0
    assert 1.0 <= res["is_mean"] <= 4.0 and res["is_std"] >= 0
    assert res["num_fake"] == res["num_real"] == 24
    assert res["settings"]["size"] == 16 and res["settings"]["kid_subset_size"] == 24
    assert set(res["versions"]) == {"deepfake-lab", "torch", "numpy"}
    assert "model" not in res and res["source"] == str(tiny_faces)
    assert res["ref_cache"]["hit"] is False
    assert str(tmp_path / "cache" / "stats") in res["ref_cache"]["path"]
    json.dumps(res)  # JSON-ready as it is


def test_results_do_not_depend_on_the_batch_size_and_the_reference_is_cached(tiny_faces):
    a = evaluate_gan(tiny_faces, tiny_faces, metrics="fid,kid", features="tiny-test", batch=24)
    b = evaluate_gan(tiny_faces, tiny_faces, metrics="fid,kid", features="tiny-test", batch=7)
    assert b["ref_cache"]["hit"] and not a["ref_cache"]["hit"]
    assert b["fid"] == pytest.approx(a["fid"], abs=1e-9)
    assert b["kid_mean"] == pytest.approx(a["kid_mean"], rel=1e-5)


def test_a_generator_gives_what_its_generated_pngs_give(export, tiny_faces, tmp_path):
    from deepfake_lab.generate import generate_images

    kw = {"metrics": "fid,kid,pr,dc", "features": "tiny-test", "batch": 6, "seed": 3}
    direct = evaluate_gan(export, tiny_faces, num=20, **kw)
    assert direct["num_fake"] == 20 and direct["model"]["arch"] == "dcgan"
    assert direct["settings"]["size"] == 16 and direct["fid"] > 0
    assert direct["ref_cache"]["hit"] is False
    from deepfake_lab.provenance.marking import ProvenanceOptions

    # The generator is measured unmarked; marked files are measured in bench/watermark.py.
    unmarked = ProvenanceOptions(watermark=False)
    pngs = generate_images(export, 20, tmp_path / "pngs", seed=3, provenance=unmarked)["images"]
    assert len(pngs) == 20
    from_files = evaluate_gan(tmp_path / "pngs", tiny_faces, num=1000, **kw)
    assert from_files["ref_cache"]["hit"] is True
    assert "model" not in from_files and from_files["num_fake"] == 20
    for key in ("fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage"):
        assert from_files[key] == pytest.approx(direct[key], rel=1e-9, abs=1e-12), key


def test_size_resizes_both_sides_and_is_part_of_the_reference_key(export, tiny_faces):
    res = evaluate_gan(export, tiny_faces, metrics="fid", features="tiny-test", num=8, size=8)
    assert res["settings"]["size"] == 8 and math.isfinite(res["fid"])
    assert res["ref_cache"]["hit"] is False  # 16 px statistics would not do


def test_streaming_reports_progress_and_skips_unreadable_files(tiny_faces, tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    for p in sorted(tiny_faces.iterdir())[:10]:
        (fake / p.name).write_bytes(p.read_bytes())
    (fake / "broken.png").write_bytes(b"not a png")
    seen = []
    res = evaluate_gan(
        fake,
        tiny_faces,
        metrics="fid",
        features="tiny-test",
        batch=4,
        progress=lambda *a: seen.append(a),
    )
    assert res["num_fake"] == 10 and res["skipped_fake"] == 1
    assert seen[-1] == ("real", 24, 24) and ("fake", 11, 11) in seen
    assert [s for s in seen if s[0] == "fake"][0] == ("fake", 4, 11)


def test_metric_names_are_checked():
    assert parse_metrics("FID, kid,fid") == ["fid", "kid"]
    assert parse_metrics(["pr", "dc"]) == ["pr", "dc"]
    for bad in ("fid,lpips", "", " , "):
        with pytest.raises(UserError) as err:
            parse_metrics(bad)
        assert "fid, kid, is, pr, dc" in str(err.value)


def test_too_few_images_say_how_many_are_needed(tiny_faces, export, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    for p in sorted(tiny_faces.iterdir())[:3]:
        (small / p.name).write_bytes(p.read_bytes())
    with pytest.raises(UserError, match="pr needs at least 4 generated and 4 reference"):
        evaluate_gan(small, tiny_faces, metrics="fid,pr", features="tiny-test")
    with pytest.raises(UserError, match="dc needs at least 1 generated and 6 reference"):
        evaluate_gan(tiny_faces, small, metrics="dc", features="tiny-test")
    with pytest.raises(UserError, match="is needs at least 10 generated"):
        evaluate_gan(export, tiny_faces, metrics="is", features="tiny-test", num=5)
    with pytest.raises(UserError, match="fid needs at least 2"):
        evaluate_gan(export, tiny_faces, metrics="fid", features="tiny-test", num=1)


def test_user_errors(tiny_faces, tmp_path):
    with pytest.raises(UserError, match="is needs a classifier"):
        evaluate_gan(tiny_faces, tiny_faces, metrics="is", features="tiny-plain")
    with pytest.raises(UserError, match="--weights"):
        evaluate_gan(tiny_faces, tiny_faces, metrics="fid", features="resnet56-cifar")
    with pytest.raises(UserError, match="unknown feature extractor 'nope'"):
        evaluate_gan(tiny_faces, tiny_faces, features="nope")
    with pytest.raises(UserError, match="reference folder not found"):
        evaluate_gan(tiny_faces, tmp_path / "missing", features="tiny-test")
    with pytest.raises(UserError, match="not found"):
        evaluate_gan(tmp_path / "missing", tiny_faces, features="tiny-test")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "samples").mkdir()
    (run / "samples" / "grid-000100.png").write_bytes((tiny_faces / "000.png").read_bytes())
    with pytest.raises(UserError, match="no checkpoint found"):  # not a folder of images
        evaluate_gan(run, tiny_faces, features="tiny-test")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images found"):
        evaluate_gan(tmp_path / "empty", tiny_faces, features="tiny-test")


def test_is_only_needs_no_reference_pass(tiny_faces):
    res = evaluate_gan(tiny_faces, tiny_faces, metrics="is", features="tiny-test")
    assert res["ref_cache"] is None and res["num_real"] == 0 and "fid" not in res
    assert [name for name, _ in metric_rows(res)] == ["IS"]


def test_table_rows_use_the_space_label():
    res = {"fid": 1.5, "label": "FD-R56", "kid_mean": 0.01, "kid_std": 0.001, "precision": 0.5}
    names = [name for name, _ in metric_rows(res)]
    assert names == ["FD-R56", "KID", "precision"]
    assert metric_rows({**res, "label": "FID"})[0][0] == "FID"


def test_an_extractor_instance_is_used_as_given(tiny_faces):
    fx = TinyFeatures()
    res = evaluate_gan(tiny_faces, tiny_faces, metrics="fid", features=fx)
    assert res["feature_space"] == "tiny-test" and abs(res["fid"]) < 1e-9


def test_real_resnet56_space_on_a_few_faces(tmp_path):
    r56 = shared_path("models", "resnet56-4bfd9763.th")
    files = sorted(shared_path("data", "ffhq-128").glob("*.png"))[:24]
    halves = [tmp_path / "a", tmp_path / "b"]
    for half, chunk in zip(halves, (files[:12], files[12:]), strict=True):
        half.mkdir()
        for f in chunk:
            (half / f.name).symlink_to(f)
    res = evaluate_gan(
        halves[0], halves[1], metrics="fid,kid,pr", features="resnet56-cifar", weights=r56
    )
    assert res["label"] == "FD-R56" and res["feature_space"] == "resnet56-cifar"
    assert res["fd_r56"] == res["fid"] and np.isfinite(res["fid"]) and res["fid"] > 0
    assert res["num_fake"] == res["num_real"] == 12 and res["settings"]["size"] == 128
    assert metric_rows(res)[0][0] == "FD-R56"
    assert all(0 <= res[k] <= 1 for k in ("precision", "recall"))
