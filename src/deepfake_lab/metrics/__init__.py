"""Metric functions, free of training and file handling: Frechet distance, KID, IS,
precision/recall and density/coverage (``generative``, ``frechet``), the feature spaces they
are measured in (``features``, with the rule that only Inception-v3 may say "FID"), cached
reference statistics (``stats_cache``), detector metrics with bootstrap intervals
(``detection``) and calibration (``calibration``). The pipelines that train and score live
in :mod:`deepfake_lab.evaluation`."""
