"""Run folders and checkpoint files on disk.

Training writes them (:mod:`deepfake_lab.training`); loading reads them
(:mod:`deepfake_lab.models.detectors.loading`, :mod:`deepfake_lab.models.generators.loading`).
Both sit above this package, which needs nothing of the project but its errors and atomic
writes.
"""
