"""``calibrate_detector``: the Python API behind ``deepfake-lab calibrate``.

A detector's threshold is fitted on its own validation split, so it belongs to the sources
it was trained on. Where a user has labelled images from their own domain (their cameras,
their platform's re-encoding, the generator they worry about), or only real faces of that
domain plus pseudo-fakes made from them, this refits the temperature and the decision
threshold on those images without touching the weights, and writes the result as an export
folder that ``detect``, ``eval detector`` and ``export`` load like any other.

Scoring goes through the same path as training's calibration and ``eval detector``: files
are decoded at the detector's size with its native-size floor and re-encoding, pseudo-fakes
are made from those decoded reals (one per real face, fixed by ``seed``), and the fused
inference copy gives the logits. The images must be ones the detector did not train on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_lab.data.detection import DetectionDataset, collect_samples
from deepfake_lab.data.pseudo import PseudoFakeSet
from deepfake_lab.devices import resolve_device
from deepfake_lab.errors import UserError
from deepfake_lab.evaluation.detector_eval import score
from deepfake_lab.export import write_detector_export
from deepfake_lab.faces.landmarks import Landmarker
from deepfake_lab.metrics.calibration import calibration_record
from deepfake_lab.models.detectors.loading import load_detector
from deepfake_lab.models.detectors.tta import check_tta
from deepfake_lab.models.export_format import check_export_out
from deepfake_lab.report.detection_plots import plot_score_hist
from deepfake_lab.report.html import ReportImage, Section, Table, write_report
from deepfake_lab.training.common import seed_everything


@dataclass
class CalibrationResult:
    """What ``calibrate_detector`` wrote and measured.

    Attributes:
        folder: the export folder with the new calibration.
        record: the new calibration (temperature, threshold, ``logit_threshold``, method).
        before: rates on the calibration images at the detector's previous threshold.
        after: the same at the new threshold.
        counts: images per source that the calibration used.
        skipped: files that could not be decoded, with the reason.
    """

    folder: Path
    record: dict[str, Any]
    before: dict[str, float]
    after: dict[str, float]
    counts: dict[str, int]
    skipped: list[tuple[str, str]]


def _rates(labels: np.ndarray, logits: np.ndarray, logit_threshold: float) -> dict[str, float]:
    """Share of real images called fake (FPR) and of fake images called fake (TPR)."""
    fake = logits >= logit_threshold
    return {
        "real_called_fake": float(fake[labels == 0].mean()),
        "fake_called_fake": float(fake[labels == 1].mean()),
    }


def calibrate_detector(
    source: str | Path,
    out: str | Path,
    real: list[str | Path] | None = None,
    fake: list[str | Path] | None = None,
    manifest: str | Path | None = None,
    *,
    manifest_outside: bool = False,
    pseudo_fake: list[str] | None = None,
    method: str = "eer",
    target_fpr: float = 0.05,
    seed: int = 0,
    landmarks: str = "auto",
    device: str = "auto",
    batch: int = 128,
    tta: str | None = None,
) -> CalibrationResult:
    """Refit a detector's temperature and threshold on new labelled images.

    Args:
        source: a detector run folder, checkpoint, export or released weights (``meso4:DF``).
        out: new or empty export folder to write.
        real, fake, manifest: the labelled images (not ones the detector trained on).
        manifest_outside: accept manifest paths outside the manifest's folder.
        pseudo_fake: also make one pseudo-fake per real face (``sbi``, ``sbi-mouth``);
            then ``fake`` is optional.
        method: ``eer`` (equal error rate) or ``fpr`` (the smallest threshold whose share of
            real images called fake is at most ``target_fpr``).
        target_fpr: with ``method="fpr"``, in (0, 1).
        seed: the pseudo-fakes' seed.
        landmarks: pseudo-fake landmark source (``auto``, ``dlib68``, ``yunet``, ``template``).
        device: ``auto``, ``cpu`` or ``cuda``.
        batch: images per forward pass.
        tta: the test-time view to score and fit with (``none``, or ``flip``: the mean
            logit of each image and its mirror image); None keeps the detector's.

    Raises:
        UserError: a bad method or target, ``out`` not empty, a source that is not a
            detector or is a fusion, no images, or images of one class only; all before
            anything is written.
    """
    if method not in ("eer", "fpr"):
        raise UserError(f"method must be eer or fpr, got {method!r}")
    if not 0 < target_fpr < 1:
        raise UserError(f"target_fpr must be in (0, 1), got {target_fpr}")
    if tta is not None:
        check_tta(tta, "--tta")
    if not (fake or manifest or pseudo_fake):
        raise UserError(
            "calibration needs fake images too: give --fake DIR, a --manifest, or "
            "--pseudo-fake sbi to make them from the real faces"
        )
    out = Path(out)
    check_export_out(out)
    seed_everything(seed)
    dev = resolve_device(device)
    det = load_detector(source, dev)
    if hasattr(det.model, "analyse"):
        raise UserError(
            f"{source} is a fusion: refit it with `deepfake-lab train fusion` on the new "
            "images (its stacker, OOD score and threshold are fitted together)"
        )
    samples = collect_samples(
        [Path(p) for p in real or []],
        [Path(p) for p in fake or []],
        Path(manifest) if manifest else None,
        require_fake=not pseudo_fake,
        manifest_outside=manifest_outside,
    )
    data = DetectionDataset.from_samples(
        samples, det.size, reencode=det.reencode, native_floor=det.native_floor
    )
    if pseudo_fake:
        made = PseudoFakeSet.build(data, pseudo_fake, Landmarker(landmarks), paired=False)
        data = made.materialise(seed)
    labels = data.labels.numpy()
    if len(set(labels.tolist())) < 2:
        raise UserError(
            "calibration needs real and fake images; give --fake folders or --pseudo-fake"
        )
    logits = score(det, data, dev, batch)
    before = _rates(labels, logits, det.logit_threshold)
    if tta is not None and tta != det.tta:
        # The previous threshold is judged on the view it was fitted with, the new one on
        # the new view.
        det = replace(det, tta=tta)
        logits = score(det, data, dev, batch)
    record = calibration_record(labels, logits, method, target_fpr, det.tta)
    thr = record["logit_threshold"]
    after = _rates(labels, logits, thr)
    counts = data.counts()
    notes = {
        "calibrated_on": {
            "source": str(source),
            "previous": det.calibration,
            "images": counts,
            "pseudo_fake": list(pseudo_fake or []),
            "seed": seed,
            "before": before,
            "after": after,
        }
    }

    def report(folder: Path) -> None:
        plot_score_hist(labels, logits, folder / "scores.png", thr, title="calibration images")
        table = Table(
            ["", "previous threshold", "new threshold"],
            [[k.replace("_", " "), before[k], after[k]] for k in before],
            caption=", ".join(f"{k}: {v}" for k, v in counts.items()),
        )
        section = Section(
            heading=f"Recalibrated ({method}) on {len(labels)} images",
            paragraphs=[f"from {source}; weights unchanged; test-time view: {det.tta}"],
            tables=[table],
            images=[ReportImage("scores.png", "logits of the calibration images")],
        )
        write_report(folder / "index.html", f"deepfake-lab calibrate {det.model_id}", [section])

    written = write_detector_export(det, out, calibration=record, notes=notes, extra=report)
    skipped = [(str(p), str(why)) for p, why in data.skipped]
    return CalibrationResult(written.folder, record, before, after, counts, skipped)
