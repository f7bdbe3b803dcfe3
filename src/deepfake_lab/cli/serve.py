"""``deepfake-lab serve``: the HTTP API and the page (``deepfake_lab.serve``)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
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
    # Bound before the models load: a taken port is said at once, in one line. Clients that
    # connect meanwhile wait in the backlog until the server answers.
    sock = listen(host, port)
    try:
        models = ModelSet(
            model or [DEFAULT_DETECTOR],
            device=device,
            faces=faces,
            face_detector=face_detector,
            face_model=face_model,
        )
        app = create_app(models, limits, api_key=key, cors_origins=cors_origin)
    except BaseException:
        sock.close()
        raise
    console.print(
        f"serving {', '.join(models.models)} at http://{_url_host(host)}:{port}/ "
        f"(API docs at /docs{', API key required' if key else ''})",
        highlight=False,
        markup=False,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    # uvicorn stops gracefully on SIGTERM, then re-raises it; without a handler of ours the
    # process would die of it (status 143) although it stopped cleanly. SIGINT keeps the
    # CLI's usual "interrupted" (130).
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
        # The lifespan shutdown deletes it; this covers a server that never started.
        shutil.rmtree(app.state.root, ignore_errors=True)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6, as ``host`` resolves).

    Raises:
        UserError: the address is taken, not this machine's, or the port is privileged.
    """
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UserError(f"--host {host}: cannot listen there ({exc})") from None
    try:
        # As uvicorn does: a restarted server may reuse a port whose old connections linger.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = exc.strerror or str(exc)
        raise UserError(f"cannot listen on {host}:{port}: {why.lower()}") from None
    return sock


def _url_host(host: str) -> str:
    """``host`` as the host part of a URL (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host else host
