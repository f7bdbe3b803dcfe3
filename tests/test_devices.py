"""Device choice: which devices compute bfloat16 natively."""

import pytest
import torch

from deepfake_lab.devices import native_bf16


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"),
    [(False, False, False), (True, False, True), (False, True, True)],
)
def test_cpu_bf16_is_native_only_with_avx512_bf16_or_amx(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert native_bf16(torch.device("cpu")) is expected


def test_cuda_is_native_and_other_devices_are_not():
    assert native_bf16(torch.device("cuda")) is True
    assert native_bf16(torch.device("mps")) is False


def test_a_torch_without_the_cpu_probes_reads_as_not_native(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert native_bf16(torch.device("cpu")) is False
