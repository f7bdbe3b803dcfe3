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


def _three(tmp_path):
    return [
        ck.save_checkpoint(tmp_path / ck.checkpoint_name(n), {"w": torch.full((64,), float(n))})
        for n in (1000, 2000, 3000)
    ]


def test_checkpoints_carry_a_checksum_of_their_content(tmp_path):
    p = ck.save_checkpoint(tmp_path / "c.pt", {"w": torch.arange(8.0), "opt": {"lr": 0.1}})
    state = ck.load_checkpoint(p)
    assert state[ck.CHECKSUM_KEY] == ck.content_sha256(state)
    assert ck.checkpoint_note(p, state) is None
    # Any change of a value, a tensor's dtype or its shape changes the checksum.
    for other in (
        {**state, "opt": {"lr": 0.2}},
        {**state, "w": torch.arange(8.0).double()},
        {**state, "w": torch.arange(8.0).reshape(2, 4)},
    ):
        assert ck.content_sha256(other) != state[ck.CHECKSUM_KEY]


def test_a_flipped_byte_is_refused(tmp_path):
    p = ck.save_checkpoint(tmp_path / "c.pt", {"w": torch.full((256,), 0.5)})
    data = bytearray(p.read_bytes())
    at = data.find(torch.full((2,), 0.5).numpy().tobytes())
    data[at + 3] ^= 0x01  # one bit of one weight: still a valid zip and pickle
    p.write_bytes(bytes(data))
    with pytest.raises(UserError, match="damaged: its content does not match the checksum"):
        ck.load_checkpoint(p)


def test_old_checkpoints_without_checksum_still_load_with_a_note(tmp_path):
    p = tmp_path / "old.pt"
    torch.save({"format": ck.FORMAT, "format_version": 1, "step": 3}, p)
    state = ck.load_checkpoint(p)
    assert state["step"] == 3
    assert "without an integrity check" in ck.checkpoint_note(p, state)
    found = ck.load_newest_checkpoint(p)
    assert any("without an integrity check" in n for n in found.notes)


def test_truncated_newest_falls_back_to_the_previous_one(tmp_path):
    first, second, third = _three(tmp_path)
    third.write_bytes(third.read_bytes()[: third.stat().st_size // 2])
    found = ck.load_newest_checkpoint(tmp_path)
    assert found.path == second and float(found.state["w"][0]) == 2000
    assert [p for p, _ in found.skipped] == [third]
    (note,) = found.notes
    assert str(third) in note and "truncated" in note and second.name in note


def test_damaged_newest_falls_back_too_and_a_run_folder_works(tmp_path):
    run = tmp_path / "00000-run"
    first, second, third = _three(run / "checkpoints")
    data = bytearray(third.read_bytes())
    data[data.find(torch.full((2,), 3000.0).numpy().tobytes())] ^= 0x01
    third.write_bytes(bytes(data))
    found = ck.load_newest_checkpoint(run)
    assert found.path == second and "damaged" in found.skipped[0][1]


def test_no_good_checkpoint_is_a_clear_error(tmp_path):
    for p in _three(tmp_path):
        p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(UserError, match=r"none of the 3 checkpoints .* ckpt-0000003000\.pt"):
        ck.load_newest_checkpoint(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no checkpoint found"):
        ck.load_newest_checkpoint(tmp_path / "empty")
    with pytest.raises(UserError, match="not found: .*nowhere"):
        ck.load_newest_checkpoint(tmp_path / "nowhere")


def test_a_named_file_is_not_replaced_by_an_older_one(tmp_path):
    _, _, third = _three(tmp_path)
    third.write_bytes(third.read_bytes()[:100])
    with pytest.raises(UserError, match="cannot read checkpoint"):
        ck.load_newest_checkpoint(third)


def test_save_flushes_the_file_and_its_folder(tmp_path, monkeypatch):
    import os
    import stat

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.fstat(fd)) or real_fsync(fd))
    ck.save_checkpoint(tmp_path / "c.pt", {"step": 1})
    # The temp file, then the folder after the rename.
    assert [stat.S_ISDIR(st.st_mode) for st in synced] == [False, True]


def test_a_malicious_pickle_is_refused(tmp_path):
    import os

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    p = tmp_path / "ckpt-0000000001.pt"
    torch.save({"format": ck.FORMAT, "x": Boom()}, p)
    with pytest.raises(UserError, match="cannot read checkpoint"):
        ck.load_checkpoint(p)
    assert not (tmp_path / "pwned").exists()
