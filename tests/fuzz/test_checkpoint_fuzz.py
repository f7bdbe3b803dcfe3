"""Fuzzing checkpoint loading: a damaged checkpoint file loads unchanged or raises
CheckpointError (one line), and a run folder of damaged checkpoints gives a UserError."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import example, given

from deepfake_lab.errors import UserError
from deepfake_lab.runs.checkpoint import (
    CheckpointError,
    capture_rng,
    load_checkpoint,
    load_newest_checkpoint,
    save_checkpoint,
)
from fuzz_tools import fuzz_settings, memory_cap, mutated


def _seed() -> bytes:
    """A small checkpoint as training writes one: weights, optimizer state, RNG, config."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4, 2))
    opt = torch.optim.Adam(model.parameters())
    model[1](torch.randn(2, 4)).sum().backward()
    opt.step()
    state = {
        "nimg": 8,
        "step": 2,
        "G": model.state_dict(),
        "opt_G": opt.state_dict(),
        "rng": capture_rng(),
        "config": {"model": {"arch": "dcgan", "size": 16}, "train": {"batch": 4}},
    }
    with tempfile.TemporaryDirectory() as tmp:
        return save_checkpoint(Path(tmp) / "ckpt-0000000008.pt", state).read_bytes()


def _pickle_string(text: bytes) -> bytes:
    return b"X" + len(text).to_bytes(4, "little") + text


def _nested_too_deeply(seed: bytes) -> bytes:
    """``seed`` with its pickle replaced by a dict that claims a checksum and holds a list
    nested 50 000 deep: hashing it recursed past Python's stack (RecursionError)."""
    pickle = b"\x80\x02}q\x00("
    for key, value in ((b"format", b"deepfake-lab/checkpoint"), (b"content_sha256", b"0" * 64)):
        pickle += _pickle_string(key) + _pickle_string(value)
    pickle += _pickle_string(b"x") + b"]" * 50_000 + b"a" * 49_999 + b"u."
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(seed)) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            body = pickle if item.filename.endswith("data.pkl") else zin.read(item.filename)
            zout.writestr(item, body)
    return out.getvalue()


SEED = _seed()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("checkpoint-fuzz")


@fuzz_settings(examples=60, deadline_s=10)
@given(data=mutated([SEED], max_edits=3))
@example(data=_nested_too_deeply(SEED))  # found by fuzzing: RecursionError while hashing
def test_a_damaged_checkpoint_raises_only_checkpoint_error(folder: Path, data: bytes) -> None:
    run = folder / "run"
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    path = run / "checkpoints" / "ckpt-0000000008.pt"
    path.write_bytes(data)
    with memory_cap():
        try:
            state = load_checkpoint(path)
        except CheckpointError as exc:
            assert "\n" not in str(exc) and exc.reason
            assert "MemoryError" not in exc.reason  # bounded: no claim of a huge size got far
        else:
            assert state["nimg"] == 8  # loaded: the checksum vouches for every value
        try:
            found = load_newest_checkpoint(run)
        except UserError as exc:
            assert "\n" not in str(exc)
        else:
            assert found.path == path
