import pytest

from deepfake_lab.config import apply_overrides, build_config, parse_override
from deepfake_lab.errors import UserError
from deepfake_lab.training.gan_config import GanConfig


def test_override_values_are_typed():
    assert parse_override("train.batch=32") == (["train", "batch"], 32)
    assert parse_override("optim.betas=[0.0, 0.99]") == (["optim", "betas"], [0.0, 0.99])
    assert parse_override("run.name=abc") == (["run", "name"], "abc")
    assert apply_overrides({"a": {"b": 1}}, ["a.c=2"]) == {"a": {"b": 1, "c": 2}}


def test_precedence_file_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  batch: 8\n  kimg: 3\nmodel:\n  arch: dcgan\n")
    cfg = build_config(GanConfig, f, ["train.batch=4"])
    assert cfg.train.batch == 4 and cfg.train.kimg == 3 and cfg.model.arch == "dcgan"
    assert cfg.optim.betas == (0.5, 0.99)  # default kept


def test_unknown_key_is_rejected_by_name(tmp_path):
    with pytest.raises(UserError, match="unknown key 'train.bach'"):
        build_config(GanConfig, None, ["train.bach=4"])
    f = tmp_path / "c.yaml"
    f.write_text("modle:\n  arch: dcgan\n")
    with pytest.raises(UserError, match="unknown key 'modle'"):
        build_config(GanConfig, f)


def test_invalid_values_and_bad_syntax():
    with pytest.raises(UserError, match="model.size"):
        build_config(GanConfig, None, ["model.size=48"])
    with pytest.raises(UserError, match="key=value"):
        build_config(GanConfig, None, ["train.batch"])
    with pytest.raises(UserError, match="not found"):
        build_config(GanConfig, "/nonexistent/x.yaml")
