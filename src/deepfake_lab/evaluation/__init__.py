"""Evaluation pipelines: score trained models on data and write the numbers and pictures.

These sit above :mod:`deepfake_lab.training` and :mod:`deepfake_lab.metrics`: they load
models, build datasets, call the metric functions of :mod:`deepfake_lab.metrics` and, for
cross-source and detection-resistance tables, train fresh detectors.

* :mod:`~deepfake_lab.evaluation.evaluate`: generator evaluation (``eval gan``).
* :mod:`~deepfake_lab.evaluation.detector_eval`: detector evaluation (``eval detector``).
* :mod:`~deepfake_lab.evaluation.video_eval`: per-video detector evaluation.
* :mod:`~deepfake_lab.evaluation.cross_source`: train on some sources, test on the others.
* :mod:`~deepfake_lab.evaluation.resistance`: how well a fresh detector catches a generator.
"""
