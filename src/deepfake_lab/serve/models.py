"""The detectors a server answers with, loaded once at start, and the scans it runs.

Image scans go through :func:`deepfake_lab.detect.iter_image_records` and video scans through
:func:`deepfake_lab.video.detect_video.detect_videos`, the same code as ``deepfake-lab
detect``, so a file gets the same record from the page, the API and the command line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepfake_lab.errors import UserError


@dataclass
class ServedModel:
    """One loaded detector: ``id`` is what requests name it by (``model_id``)."""

    id: str
    source: str
    detector: Any  # LoadedDetector
    lock: threading.Lock = field(default_factory=threading.Lock)

    def describe(self) -> dict[str, Any]:
        det = self.detector
        return {
            "id": self.id,
            "source": self.source,
            "name": det.identity.get("name"),
            "size": det.size,
            "threshold": det.threshold,
            "calibrated": det.calibrated,
            "tta": det.tta,  # "flip": each image is scored with its mirror image too
            "can_abstain": bool(getattr(det.model, "can_abstain", False)),
        }


class ModelSet:
    """The served detectors and the face detectors they need.

    Args:
        sources: run folders, checkpoints, exports or released names (``meso4:DF``); the
            first is the default.
        device: where to run them.
        faces: score the faces found in each image (else the centre crop, for aligned crops).
        face_detector, face_model: which face detector (``FACE_DETECTORS``) and its file.
        secret_file, trust_anchors: as for ``verify`` (the provenance panel).

    Raises:
        UserError: a model or face detector that cannot be loaded (before serving).
    """

    def __init__(
        self,
        sources: list[str],
        device: str = "auto",
        faces: bool = True,
        face_detector: str = "yunet",
        face_model: str | Path | None = None,
        secret_file: str | Path | None = None,
        trust_anchors: str | Path | None = None,
    ) -> None:
        from deepfake_lab.devices import resolve_device
        from deepfake_lab.faces.detectors import build_face_detector
        from deepfake_lab.models.detectors.loading import load_detector

        if not sources:
            raise UserError("serve: give at least one --model")
        self.device = resolve_device(device)
        self.models: dict[str, ServedModel] = {}
        for source in sources:
            det = load_detector(source, self.device)
            if det.model_id in self.models:
                continue  # the same weights twice
            self.models[det.model_id] = ServedModel(det.model_id, str(source), det)
        self.default = next(iter(self.models))
        self.faces = faces
        # One face detector per kind of work: OpenCV's are not safe to share across threads.
        build = lambda: build_face_detector(face_detector, face_model)  # noqa: E731
        self._image_finder = build() if faces else None
        self._video_finder = build()
        self.face_detector = face_detector
        self.secret_file, self.trust_anchors = secret_file, trust_anchors

    def pick(self, model_id: str | None) -> ServedModel:
        """The model a request names (None: the default).

        Raises:
            UserError: no such model.
        """
        if not model_id:
            return self.models[self.default]
        if model_id not in self.models:
            raise UserError(f"unknown model {model_id!r}; this server has {', '.join(self.models)}")
        return self.models[model_id]

    def describe(self) -> list[dict[str, Any]]:
        return [m.describe() for m in self.models.values()]

    def scan_image(
        self, model: ServedModel, path: Path, explain_dir: Path | None
    ) -> dict[str, Any]:
        """The ``detect --json`` record of one image file; with faces, every face is scored
        (``faces``) and the most suspicious one answers."""
        from deepfake_lab.detect import base_record, iter_image_records

        det = model.detector
        with model.lock:  # Grad-CAM hooks the model: one image scan per model at a time
            (scanned,) = iter_image_records(
                det,
                [path],
                finder=self._image_finder,
                explain_dir=explain_dir,
                all_faces=self.faces,
            )
        return base_record(det, path, scanned["label"], self.faces, explain_dir is not None) | (
            scanned
        )

    def scan_video(
        self,
        model: ServedModel,
        path: Path,
        timeline_dir: Path,
        frames: int,
        progress: Callable[[str, int, int | None], None],
    ) -> dict[str, Any]:
        """The ``detect --json`` record of one video, ``frames`` evenly spaced frames."""
        from deepfake_lab.video.detect_video import detect_videos

        return detect_videos(
            model.detector,
            [path],
            self._video_finder,
            timeline_dir=timeline_dir,
            frames=frames,
            progress=progress,
        )[0]

    def provenance(self, path: Path) -> dict[str, Any]:
        """What ``verify`` reads from the file: our watermark, metadata tag and C2PA."""
        from deepfake_lab.provenance.verify import verify_images

        records = verify_images(
            [path], secret_file=self.secret_file, trust_anchors=self.trust_anchors
        )
        record = dict(records[0]) if records else {}
        record.pop("path", None)  # the server's private name of the upload
        return record
