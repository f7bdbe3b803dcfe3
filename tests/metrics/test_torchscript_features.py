"""torchscript: a user's saved network as a feature space."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from deepfake_lab.errors import UserError
from deepfake_lab.metrics.features import FEATURE_EXTRACTORS


class TinyNet(nn.Module):
    """(B, 3, H, W) -> (B, 5): a conv and a global average pool."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


class NeedsSize(nn.Module):
    """Only works on 16 x 16 images, like a network with a fixed-size head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * 16 * 16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def _script(module: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated
        torch.jit.save(torch.jit.script(module), path)
    return path


@pytest.fixture
def tiny(tmp_path) -> Path:
    return _script(TinyNet(), tmp_path / "tiny-net.pt")


def test_features_match_the_module(tiny):
    fx = FEATURE_EXTRACTORS.build("torchscript", weights=tiny)
    assert (fx.label, fx.dim) == ("FD-tiny-net", 5)
    x = torch.rand(4, 3, 20, 24) * 2 - 1
    assert torch.allclose(fx.features(x), TinyNet()(x), atol=1e-6)
    assert fx.features(x).dtype == torch.float32
    key = fx.cache_key()
    assert key["name"] == "torchscript" and len(key["weights_sha256"]) == 64
    fx.train()
    assert not fx.training


def test_input_range_size_and_label(tmp_path):
    path = _script(NeedsSize(), tmp_path / "fixed.pt")
    with pytest.raises(UserError, match=r"fails on a \(2, 3, 64, 64\).*size="):
        FEATURE_EXTRACTORS.build("torchscript", weights=path)
    fx = FEATURE_EXTRACTORS.build(
        "torchscript", weights=path, label="FD-Fixed", input_range="0,255", size=16
    )
    assert (fx.label, fx.dim) == ("FD-Fixed", 4)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.allclose(fx.features(x), NeedsSize()((x + 1) * 127.5), atol=1e-4)
    assert fx.features(torch.rand(3, 3, 40, 40)).shape == (3, 4)  # resized to 16 first


def test_bad_files_and_options_are_user_errors(tmp_path, tiny):
    with pytest.raises(UserError, match="not found"):
        FEATURE_EXTRACTORS.build("torchscript", weights=tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a module")
    with pytest.raises(UserError, match="not a loadable TorchScript module"):
        FEATURE_EXTRACTORS.build("torchscript", weights=junk)
    with pytest.raises(UserError, match="reserved"):
        FEATURE_EXTRACTORS.build("torchscript", weights=tiny, label="FID")
    with pytest.raises(UserError, match="input_range"):
        FEATURE_EXTRACTORS.build("torchscript", weights=tiny, input_range="0..1")
    scalar = _script(_Scalar(), tmp_path / "scalar.pt")
    with pytest.raises(UserError, match=r"must return float features \(B, D\)"):
        FEATURE_EXTRACTORS.build("torchscript", weights=scalar)


class _Scalar(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean()


def test_exported_program(tmp_path):
    batch = torch.export.Dim("batch", min=2)
    program = torch.export.export(
        TinyNet().eval(), (torch.zeros(2, 3, 16, 16),), dynamic_shapes=({0: batch},)
    )
    path = tmp_path / "tiny.pt2"
    torch.export.save(program, path)
    fx = FEATURE_EXTRACTORS.build("torchscript", weights=path, size=16)
    assert (fx.label, fx.dim) == ("FD-tiny", 5)
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    assert torch.allclose(fx.features(x), TinyNet()(x), atol=1e-6)
    fx.eval()  # exported modules refuse eval(); the extractor must not pass it on
