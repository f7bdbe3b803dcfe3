"""``deepfake-lab serve``: the HTTP API and the page (``deepfake_lab.serve``)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import typer

from deepfake_lab.cli.common import (
    console,
    device_option,
    face_detector_option,
    face_model_option,
    handle_errors,
)
from deepfake_lab.errors import UserError

#: This module's top-level command(s); :mod:`deepfake_lab.cli.app` adds them to the root.
commands = typer.Typer()

API_KEY_ENV = "DEEPFAKE_LAB_API_KEY"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@commands.command("serve")
@handle_errors
def serve_cmd(
    model: list[str] = typer.Option(
        [],
        "--model",
        help="Detector run, checkpoint, export or released name (repeatable; the first is "
        "the default). Default: meso4:DF.",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        help=f"Key every /api/ request must carry (or ${API_KEY_ENV}); required off localhost.",
    ),
    cors_origin: list[str] = typer.Option(
        [], "--cors-origin", help="Origin allowed to call the API from a browser (repeatable)."
    ),
    device: str = device_option(),
    faces: bool = typer.Option(
        True, "--faces/--no-faces", help="Score detected faces (--no-faces: the centre crop)."
    ),
    face_detector: str = face_detector_option(),
    face_model: Path | None = face_model_option(),
    max_mb: float = typer.Option(100.0, "--max-mb", help="Largest upload in MB."),
    max_megapixels: float = typer.Option(40.0, "--max-megapixels", help="Largest image."),
    max_video_s: float = typer.Option(600.0, "--max-video-s", help="Longest video (s)."),
    scan_frames: int = typer.Option(32, "--scan-frames", help="Frames scanned per video."),
    queue: int = typer.Option(8, "--queue", help="Videos that may wait; more get 503."),
) -> None:
    """Serve the detectors over HTTP: a page at / and an API (docs at /docs)."""
    import uvicorn

    from deepfake_lab.models.detectors.loading import DEFAULT_DETECTOR
    from deepfake_lab.serve.app import create_app
    from deepfake_lab.serve.limits import ServeLimits
    from deepfake_lab.serve.models import ModelSet

    key = api_key or os.environ.get(API_KEY_ENV) or None
    if not is_loopback(host) and key is None:
        raise UserError(
            f"--host {host} accepts connections from other machines: set --api-key (or "
            f"${API_KEY_ENV}), or keep the default --host 127.0.0.1"
        )
    if not 0 < port < 65536:
        raise UserError(f"--port must be in 1..65535, got {port}")
    limits = ServeLimits(
        max_bytes=int(max_mb * 2**20),
        max_pixels=int(max_megapixels * 1e6),
        max_video_s=max_video_s,
        scan_frames=scan_frames,
        max_waiting=queue,
    )
    models = ModelSet(
        model or [DEFAULT_DETECTOR],
        device=device,
        faces=faces,
        face_detector=face_detector,
        face_model=face_model,
    )
    app = create_app(models, limits, api_key=key, cors_origins=cors_origin)
    console.print(
        f"serving {', '.join(models.models)} at http://{host}:{port}/ "
        f"(API docs at /docs{', API key required' if key else ''})",
        highlight=False,
        markup=False,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
