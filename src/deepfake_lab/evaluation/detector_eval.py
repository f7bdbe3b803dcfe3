"""``deepfake-lab eval detector``: a detector measured on labelled real and fake images.

Point metrics at the calibrated threshold, threshold-free metrics (ROC-AUC, AP, EER),
calibration (ECE), bootstrap 95% intervals, a per-source table, a robustness sweep over
common degradations, and the curves as PNGs.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_lab import __version__
from deepfake_lab.augment.robustness import PERTURBATIONS
from deepfake_lab.data.detection import DetectionDataset, collect_samples
from deepfake_lab.devices import resolve_device
from deepfake_lab.io import atomic_write_json
from deepfake_lab.metrics.detection import bootstrap_intervals, detection_metrics, per_source_table
from deepfake_lab.models.detectors.loading import LoadedDetector, fusion_verdicts, load_detector
from deepfake_lab.report import detection_plots as plots
from deepfake_lab.safe_text import for_records

POINT_KEYS = ("roc_auc", "ap", "eer", "accuracy", "precision", "recall", "f1", "ece")


@torch.no_grad()
def score(
    det: LoadedDetector, data: DetectionDataset, device: torch.device, batch: int = 128
) -> np.ndarray:
    """Logits (N,) float64 for every image of ``data``."""
    out = []
    for idx in torch.arange(len(data)).split(batch):
        x, _ = data.batch(idx, device)
        out.append(det.logits(x).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def _metrics(det: LoadedDetector, labels: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
    # Decisions on the logit scale (no saturation); ECE on the calibrated probabilities.
    probs = det.probabilities_from_logits(logits)
    return detection_metrics(labels, logits, det.logit_threshold, probs=probs)


def evaluate_detector(
    source: str | Path,
    real: list[str | Path] | None = None,
    fake: list[str | Path] | None = None,
    manifest: str | Path | None = None,
    json_path: str | Path | None = None,
    out: str | Path | None = None,
    robustness: bool = True,
    attacks: bool = False,
    n_boot: int = 1000,
    batch: int = 128,
    device: str = "auto",
    video: VideoOptions | None = None,
    videos_from: list[str | Path] | None = None,
    manifest_outside: bool = False,
) -> dict[str, Any]:
    """Evaluate a detector on labelled folders (or a manifest), images and videos.

    Args:
        source: detector run folder, checkpoint or export.
        real, fake, manifest: the labelled images (each fake folder is one source). Video
            files among them (given directly or found in the folders) are scored per video
            (:func:`deepfake_lab.evaluation.video_eval.evaluate_videos`).
        json_path: write the result here (atomically).
        out: folder for the curve PNGs (ROC, PR, reliability, confusion, score histogram).
        robustness: also measure after each perturbation of the sweep.
        attacks: also measure under white-box FGSM and PGD at epsilon 1, 2 and 4 / 255
            (:func:`deepfake_lab.training.adversarial.attack_report`; needs gradients, so slower).
        n_boot: bootstrap resamples for the 95% intervals (0: none).
        video: how videos are sampled and aggregated (default ``VideoOptions()``).
        videos_from: labelled dataset trees (FaceForensics++, VoxCeleb) whose videos are
            added, labelled by their place in the tree (``video_eval.layout_videos``).
        manifest_outside: accept manifest paths outside the manifest's folder (refused by
            default: :mod:`deepfake_lab.data.detection_manifest`).

    Returns:
        For images: ``roc_auc``, ``ap``, ``eer``, ``accuracy``, ``precision``, ``recall``,
        ``f1``, ``ece``, ``threshold``, counts, ``intervals``, ``per_source``,
        ``robustness``, ``attacks`` (with ``attacks=True``); for videos, under
        ``"videos"``, the result of ``evaluate_videos``; ``model``.

    Raises:
        UserError: no real or no fake images (or videos), unreadable model or folders.
    """
    from deepfake_lab.evaluation.video_eval import layout_videos, split_labelled

    dev = resolve_device(device)
    det = load_detector(source, dev)
    real_images, fake_images, videos = split_labelled(
        [Path(p) for p in real or []], [Path(p) for p in fake or []]
    )
    for root in videos_from or []:
        videos += layout_videos(Path(root))
    result: dict[str, Any] = {}
    if (real_images and fake_images) or manifest or not videos:
        images = (real_images, fake_images, manifest, manifest_outside)
        result = _evaluate_images(det, dev, *images, out, robustness, attacks, n_boot, batch)
    elif real_images or fake_images:  # images on one side only: nothing to compare them with
        side = "real" if real_images else "fake"
        result["notes"] = [f"image folders ignored: only {side} images were given"]
    if videos:
        from deepfake_lab.evaluation.video_eval import evaluate_videos

        opts = video or VideoOptions()
        finder = opts.finder()
        result["videos"] = evaluate_videos(
            det,
            videos,
            finder,
            opts.aggregation,
            opts.topk,
            opts.stride,
            opts.max_frames,
            opts.frames,
            n_boot,
            Path(out) if out is not None else None,
            opts.progress,
        )
    result.update(
        {
            "model": det.identity,
            "versions": {"deepfake-lab": __version__, "torch": torch.__version__},
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
    )
    if json_path:
        atomic_write_json(Path(json_path), for_records(result))  # undecodable names as \xNN
    return result


@dataclass
class VideoOptions:
    """How ``eval detector`` samples and scores labelled videos.

    Attributes:
        aggregation, topk: face scores -> video score (``video.scan.AGGREGATIONS``).
        frames: evenly spaced frames per video; None: every ``stride``-th frame, at most
            ``max_frames``.
        face_detector, face_model: the face finder (``data prepare``'s).
        progress: called as ``progress(done, total)`` after each video.
    """

    aggregation: str = "mean"
    topk: int = 5
    frames: int | None = 32
    stride: int = 1
    max_frames: int | None = None
    face_detector: str = "yunet"
    face_model: str | Path | None = None
    progress: Callable[[int, int], None] | None = None

    def finder(self) -> Any:
        from deepfake_lab.faces.detectors import build_face_detector

        return build_face_detector(self.face_detector, self.face_model)


def perturbed(
    det: LoadedDetector, data: DetectionDataset, fn: Callable[[np.ndarray], np.ndarray]
) -> DetectionDataset:
    """``data`` as the detector would see it had each file been edited by ``fn``: for a
    detector that floors or re-encodes its inputs the edit comes first, so the files are
    decoded again; otherwise the decoded images are edited directly (the same pixels)."""
    if det.native_floor is None and det.reencode in (None, "", "none", "png"):
        return data.map(fn)
    return DetectionDataset.from_samples(
        data.samples, det.size, det.reencode, det.native_floor, perturb=fn
    )


def _uncertain_shares(
    det: LoadedDetector,
    data: DetectionDataset,
    labels: np.ndarray,
    logits: np.ndarray,
    dev: torch.device,
    batch: int,
) -> dict[str, Any]:
    """A fusion's "uncertain" verdicts: share among real and fake images, by reason, and
    the accuracy on the images it did decide."""
    verdicts: list[str] = []
    reasons: dict[str, int] = {}
    for idx in torch.arange(len(data)).split(batch):
        x, _ = data.batch(idx, dev)
        lg = torch.as_tensor(logits[idx.numpy()], dtype=torch.float32)
        for label, extra in fusion_verdicts(det, x, lg) or []:
            verdicts.append(label)
            if label == "uncertain":
                reasons[extra["reason"]] = reasons.get(extra["reason"], 0) + 1
    v = np.asarray(verdicts)
    decided = v != "uncertain"
    correct = (v == "fake") == (labels == 1)
    return {
        "share": float(np.mean(~decided)),
        "share_real": float(np.mean(~decided[labels == 0])) if (labels == 0).any() else None,
        "share_fake": float(np.mean(~decided[labels == 1])) if (labels == 1).any() else None,
        "reasons": reasons,
        "accuracy_decided": float(np.mean(correct[decided])) if decided.any() else None,
    }


def _evaluate_images(
    det: LoadedDetector,
    dev: torch.device,
    real: list[Path],
    fake: list[Path],
    manifest: str | Path | None,
    manifest_outside: bool,
    out: str | Path | None,
    robustness: bool,
    attacks: bool,
    n_boot: int,
    batch: int,
) -> dict[str, Any]:
    samples = collect_samples(
        real, fake, Path(manifest) if manifest else None, manifest_outside=manifest_outside
    )
    data = DetectionDataset.from_samples(
        samples, det.size, reencode=det.reencode, native_floor=det.native_floor
    )
    labels = data.labels.numpy()
    logits = score(det, data, dev, batch)
    probs = det.probabilities_from_logits(logits)
    lt = det.logit_threshold
    result: dict[str, Any] = dict(_metrics(det, labels, logits))
    result["threshold"] = det.threshold
    result["logit_threshold"] = lt
    result["temperature"] = det.temperature
    result["calibrated"] = det.calibrated
    result["tta"] = det.tta
    if n_boot:
        result["intervals"] = bootstrap_intervals(labels, logits, lt, n_boot=n_boot, probs=probs)
    result["per_source"] = per_source_table(labels, logits, data.sources, lt)
    if hasattr(det.model, "analyse"):
        result["uncertain"] = _uncertain_shares(det, data, labels, logits, dev, batch)
    if robustness:
        rows = {}
        for name, fn in PERTURBATIONS.items():
            m = _metrics(det, labels, score(det, perturbed(det, data, fn), dev, batch))
            rows[name] = {k: m[k] for k in ("roc_auc", "ap", "eer", "accuracy", "recall")}
        result["robustness"] = rows
    if attacks:
        from deepfake_lab.training.adversarial import attack_report

        result["attacks"] = attack_report(det, data, dev, batch=min(batch, 64))
    result["skipped"] = [str(p) for p, _ in data.skipped]
    if out is not None:
        out = Path(out)
        curves = {"all": (labels, probs)}
        result["plots"] = {
            "roc": str(plots.plot_roc(curves, out / "roc.png")),
            "pr": str(plots.plot_pr(curves, out / "pr.png")),
            "reliability": str(plots.plot_reliability(labels, probs, out / "reliability.png")),
            "confusion": str(plots.plot_confusion(result["confusion"], out / "confusion.png")),
            "scores": str(plots.plot_score_hist(labels, logits, out / "scores.png", lt)),
        }
    return result
