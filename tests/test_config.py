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


def test_gan_and_detector_configs_name_architecture_and_size_alike():
    from deepfake_lab.training.detector_config import DetectorConfig

    gan = build_config(GanConfig, None, ["model.arch=dcgan", "model.size=32"])
    det = build_config(DetectorConfig, None, ["model.arch=npr", "model.size=32"])
    assert (gan.model.arch, gan.model.size) == ("dcgan", 32)
    assert (det.model.arch, det.model.size) == ("npr", 32)
    assert "size" not in DetectorConfig().data.model_dump()


def test_renamed_detector_keys_still_read_with_a_warning(tmp_path):
    from deepfake_lab.training.detector_config import DetectorConfig

    f = tmp_path / "old.yaml"
    f.write_text("model:\n  name: npr\ndata:\n  size: 48\n")
    with pytest.warns(FutureWarning, match="'model.name' is now 'model.arch'"):
        cfg = build_config(DetectorConfig, f)
    assert (cfg.model.arch, cfg.model.size) == ("npr", 48)
    with pytest.warns(FutureWarning, match="'data.size' is now 'model.size'"):
        assert build_config(DetectorConfig, None, ["data.size=24"]).model.size == 24
    with pytest.warns(FutureWarning):  # direct validation (old test code, old callers)
        assert DetectorConfig.model_validate({"model": {"name": "spectrum"}}).model.arch == (
            "spectrum"
        )


def test_old_checkpoint_config_takes_new_overrides_silently(recwarn):
    """Resuming a run whose stored config has the old keys: the stored keys are migrated
    without a warning (the user did not write them) and the new flags win."""
    from deepfake_lab.training.detector_config import DetectorConfig

    stored = {"model": {"name": "npr"}, "data": {"size": 32, "real": ["r"]}}
    cfg = build_config(DetectorConfig, None, ["model.size=64"], base=stored)
    assert (cfg.model.arch, cfg.model.size, cfg.data.real) == ("npr", 64, ["r"])
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]


def test_old_and_new_key_together_is_an_error(tmp_path):
    from deepfake_lab.training.detector_config import DetectorConfig

    f = tmp_path / "both.yaml"
    f.write_text("model:\n  size: 64\ndata:\n  size: 32\n")
    with pytest.raises(UserError, match="set only 'model.size'"):
        build_config(DetectorConfig, f)
    f.write_text("model:\n  size: 32\ndata:\n  size: 32\n")  # the same value: fine
    with pytest.warns(FutureWarning):
        assert build_config(DetectorConfig, f).model.size == 32
