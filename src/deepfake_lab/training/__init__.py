"""Training: the GAN loop (``gan``, ``gan_loop``, ``gan_config``, ``ema``,
``gan_metrics``, ``launch``), the detector loop (``detector``, ``detector_config``,
``detector_launch``, ``detector_report``) with adversarial training (``adversarial``), the
fusion of detectors (``fusion``), hyper-parameter search (``tune``), and what they share
(``common``: seeding, determinism, signals; ``logger``; ``report``; ``sampler``). Run folders
and checkpoint files are :mod:`deepfake_lab.runs`."""
