"""Config overrides for tiny, fast test models (shared by the test modules)."""

#: A 16 px GAN small enough to train a few steps in well under a second.
GAN_TINY = [
    "model.size=16",
    "model.z_dim=16",
    "model.g_channels=8",
    "model.d_channels=8",
    "model.max_channels=32",
    "train.batch=4",
    "schedule.log_kimg=0.008",
    "schedule.sample_kimg=0.016",
    "schedule.grid=2",
]


def tiny_generator_export(out, size: int = 16):
    """Write a randomly initialised ``size`` px DCGAN generator as an export folder ``out``
    (``model.safetensors`` + ``config.json``); returns ``out``."""
    import json
    from pathlib import Path

    import torch
    from safetensors.torch import save_file

    from deepfake_lab.hashing import weights_sha256
    from deepfake_lab.models import build_generator
    from deepfake_lab.models.export_format import EXPORT_FORMAT

    torch.manual_seed(0)
    kwargs = {"size": size, "z_dim": 8, "channels": 8, "max_channels": 16}
    g = build_generator("dcgan", **kwargs).eval()
    state = {k: v.contiguous() for k, v in g.state_dict().items()}
    out = Path(out)
    out.mkdir(parents=True)
    save_file(state, str(out / "model.safetensors"))
    meta = {
        "format": EXPORT_FORMAT,
        "arch": "dcgan",
        "kwargs": kwargs,
        "weights_sha256": weights_sha256(state),
    }
    (out / "config.json").write_text(json.dumps(meta))
    return out


def train_tiny_gan(tmp_path, data, name, kimg, arch="dcgan", extra=(), resume=None):
    """Train a ``GAN_TINY`` model (plus ``extra`` overrides) into ``tmp_path/runs``, without
    progress bars or TensorBoard; returns the ``TrainResult``."""
    from deepfake_lab.training.launch import train_gan

    return train_gan(
        data,
        overrides=[*GAN_TINY, *extra],
        arch=arch,
        kimg=kimg,
        out=tmp_path / "runs",
        name=name,
        resume=resume,
        progress=False,
        tensorboard=False,
    )
