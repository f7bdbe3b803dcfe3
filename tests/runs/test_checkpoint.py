import pytest
import torch

from deepfake_lab.errors import UserError
from deepfake_lab.runs import checkpoint as ck


def test_roundtrip_with_rng_states(tmp_path):
    torch.manual_seed(3)
    state = {"w": torch.randn(4), "rng": ck.capture_rng(), "step": 7}
    expected_next = torch.rand(3)
    p = ck.save_checkpoint(tmp_path / ck.checkpoint_name(1000), state)
    loaded = ck.load_checkpoint(p)
    assert loaded["step"] == 7 and torch.equal(loaded["w"], state["w"])
    ck.restore_rng(loaded["rng"])
    assert torch.equal(torch.rand(3), expected_next)


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    good = ck.save_checkpoint(tmp_path / ck.checkpoint_name(100), {"step": 1})

    real_save = torch.save

    def crashing_save(obj, fh, *a, **kw):
        fh.write(b"PK\x03\x04 partial")  # a torn zip header, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(tmp_path / ck.checkpoint_name(200), {"step": 2})
    monkeypatch.setattr(torch, "save", real_save)
    assert ck.list_checkpoints(tmp_path) == [good]  # the torn one was never put in place
    assert ck.load_checkpoint(good)["step"] == 1
    assert not any(p.suffix == ".tmp" for p in tmp_path.iterdir())


def test_damaged_or_foreign_file_is_a_user_error(tmp_path):
    bad = tmp_path / "ckpt-0000000001.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        ck.load_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"a": 1}, other)
    with pytest.raises(UserError, match="not a deepfake-lab"):
        ck.load_checkpoint(other)


def test_prune_keeps_newest(tmp_path):
    for n in (1000, 3000, 2000, 4000):
        ck.save_checkpoint(tmp_path / ck.checkpoint_name(n), {"n": n})
    ck.prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in ck.list_checkpoints(tmp_path)] == [
        ck.checkpoint_name(3000),
        ck.checkpoint_name(4000),
    ]
