"""Training helpers shared by the GAN and detector loops."""

from __future__ import annotations

import pytest
import torch

from deepfake_lab.devices import resolve_device
from deepfake_lab.errors import UserError


def test_resolve_device_accepts_cpu_and_refuses_what_it_cannot_use():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    for bad, message in (("tpu", "unknown device 'tpu'"), ("meta", "not supported")):
        with pytest.raises(UserError, match=message):
            resolve_device(bad)
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:1"):
            with pytest.raises(UserError, match="no CUDA device"):
                resolve_device(name)


def test_resolve_device_refuses_a_gpu_index_past_the_last(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(UserError, match=r"only 1 CUDA device\(s\), 0-0"):
        resolve_device("cuda:7")
