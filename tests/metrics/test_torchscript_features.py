"""torchscript: a user's saved network as a feature space."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from deepfake_lab.errors import UserError
from deepfake_lab.metrics.features import FEATURE_EXTRACTORS
from deepfake_lab.metrics.features.torchscript import TrustedCodeWarning


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


def _trusted(**kwargs):
    """The extractor with the opt-in to running the file's code (its warning silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrustedCodeWarning)
        return FEATURE_EXTRACTORS.build("torchscript", trust=True, **kwargs)


@pytest.fixture
def tiny(tmp_path) -> Path:
    return _script(TinyNet(), tmp_path / "tiny-net.pt")


def test_features_match_the_module(tiny):
    fx = _trusted(weights=tiny)
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
        _trusted(weights=path)
    fx = _trusted(weights=path, label="FD-Fixed", input_range="0,255", size=16)
    assert (fx.label, fx.dim) == ("FD-Fixed", 4)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.allclose(fx.features(x), NeedsSize()((x + 1) * 127.5), atol=1e-4)
    assert fx.features(torch.rand(3, 3, 40, 40)).shape == (3, 4)  # resized to 16 first


def test_bad_files_and_options_are_user_errors(tmp_path, tiny):
    with pytest.raises(UserError, match="not found"):
        _trusted(weights=tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a module")
    with pytest.raises(UserError, match="not a loadable TorchScript module"):
        _trusted(weights=junk)
    with pytest.raises(UserError, match="reserved"):
        _trusted(weights=tiny, label="FID")
    with pytest.raises(UserError, match="input_range"):
        _trusted(weights=tiny, input_range="0..1")
    scalar = _script(_Scalar(), tmp_path / "scalar.pt")
    with pytest.raises(UserError, match=r"must return float features \(B, D\)"):
        _trusted(weights=scalar)


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
    fx = _trusted(weights=path, size=16)
    assert (fx.label, fx.dim) == ("FD-tiny", 5)
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    assert torch.allclose(fx.features(x), TinyNet()(x), atol=1e-6)
    fx.eval()  # exported modules refuse eval(); the extractor must not pass it on


class _Writer(nn.Module):
    """A feature net whose code also writes a file: what a hostile module could do."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(torch.zeros(1), self.target)
        return x.mean(dim=(2, 3))


def test_module_files_run_only_with_the_opt_in_and_then_warn(tmp_path):
    target = tmp_path / "overwritten"
    path = _script(_Writer(str(target)), tmp_path / "writer.pt")
    with pytest.raises(UserError, match="runs its code when loaded.*--trust-torchscript") as info:
        FEATURE_EXTRACTORS.build("torchscript", weights=path)
    assert "\n" not in str(info.value)
    assert not target.exists()  # refused before the file was even opened
    with pytest.warns(TrustedCodeWarning, match=r"running the code in .*writer\.pt \(sha256"):
        FEATURE_EXTRACTORS.build("torchscript", weights=path, trust=True)
    assert target.exists()  # what trusting it means: its code ran (the dry run)


def test_build_extractor_and_eval_gan_pass_the_opt_in_through(tmp_path, tiny):
    from deepfake_lab.metrics.registry import build_extractor

    with pytest.raises(UserError, match="--trust-torchscript"):
        build_extractor("torchscript", tiny, torch.device("cpu"))
    with pytest.warns(TrustedCodeWarning):
        fx = build_extractor("torchscript", tiny, torch.device("cpu"), trust_torchscript=True)
    assert fx.dim == 5
