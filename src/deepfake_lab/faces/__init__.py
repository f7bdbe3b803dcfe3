"""Faces: detectors behind a registry, five-point landmarks, FFHQ-like alignment, montages."""
