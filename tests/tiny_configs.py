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
