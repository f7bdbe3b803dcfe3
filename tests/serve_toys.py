"""Uploads and a real server for the ``deepfake-lab serve`` tests (``tests/serve/``) and
``bench/serve_load.py``: a small PNG and MP4, hostile uploads, and ``deepfake-lab serve`` as a
real process on a free localhost port.

The server runs as ``python -m deepfake_lab serve`` with its own ``TMPDIR`` (so its private
temporary folder can be looked for afterwards), offline, its output in a log file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

#: The prefix of the server's private temporary folder (``serve.app.create_app``).
SERVE_DIR_PREFIX = "deepfake-lab-serve-"


def png_bytes(seed: int = 0, size: int = 16) -> bytes:
    """A ``size`` px PNG of random pixels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def mp4_bytes(path: Path, frames: int = 6, size: int = 32) -> bytes:
    """Write ``path``: an MP4 (MPEG-4 part 2, 5 fps) of ``frames`` random ``size`` px frames;
    returns its bytes."""
    import av

    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=Fraction(5))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for _ in range(frames):
            img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path.read_bytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data).to_bytes(4, "big")
    return len(data).to_bytes(4, "big") + kind + data + crc


def bomb_png(side: int = 100_000) -> bytes:
    """A valid PNG header claiming ``side`` x ``side`` pixels (10 gigapixels by default)
    over a few kB of compressed zeros: a decompression bomb, if anything decoded it."""
    header = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(1 << 20), 9))
        + _png_chunk(b"IEND", b"")
    )


#: Hostile uploads and the status each must get: ``name -> (bytes, status)``.
HOSTILE = {
    "truncated.png": (png_bytes()[:60], 422),
    "report.pdf.png": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", 415),
    "concat.mp4": (b"ffconcat version 1.0\nfile /etc/passwd\nfile /etc/shadow\n", 415),
    "bomb.png": (bomb_png(), 422),
    "cut.mp4": (b"\x00\x00\x00\x18ftypmp42" + bytes(200), 422),  # no 'moov': cut short
}


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(*args: str) -> list[str]:
    """The command line of ``deepfake-lab serve ARGS`` with this interpreter."""
    return [sys.executable, "-m", "deepfake_lab", "serve", *args]


def serve_env(tmp: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a test server: ``TMPDIR=tmp``, offline, no API key inherited."""
    env = {k: v for k, v in os.environ.items() if k != "DEEPFAKE_LAB_API_KEY"}
    env |= {"TMPDIR": str(tmp), "DEEPFAKE_LAB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return env | dict(extra or {})


@dataclass
class LiveServer:
    """A running server.

    Attributes:
        proc: its process.
        url: ``http://127.0.0.1:PORT`` (no trailing slash).
        tmp: its ``TMPDIR``: the private folder ``deepfake-lab-serve-*`` lives here.
        log: its stdout and stderr.
    """

    proc: subprocess.Popen
    url: str
    tmp: Path
    log: Path

    def private_dirs(self) -> list[Path]:
        """The server's private temporary folders under ``tmp`` (one while it runs)."""
        return sorted(self.tmp.glob(SERVE_DIR_PREFIX + "*"))

    def rss_kb(self) -> int:
        """The server's resident memory (kB, ``VmRSS`` of ``/proc/PID/status``)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS line in /proc/PID/status")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` and wait for the exit status (killed after ``timeout`` seconds)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode


def get_json(url: str, timeout: float = 10) -> dict:
    """GET ``url`` and decode its JSON answer."""
    with urllib.request.urlopen(url, timeout=timeout) as res:
        return json.loads(res.read())


def _wait_ready(server: LiveServer, timeout: float) -> bool:
    """Poll ``/healthz`` until it answers (True) or the process exits (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            return False
        try:
            if get_json(server.url + "/healthz", timeout=5).get("status") == "ok":
                return True
        except (OSError, ValueError):  # not listening yet, or still loading the models
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the server did not answer /healthz within {timeout:.0f} s")


@contextlib.contextmanager
def live_server(
    model: str | Path,
    tmp: Path,
    args: Sequence[str] = ("--no-faces", "--face-detector", "haar", "--device", "cpu"),
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> Iterator[LiveServer]:
    """Run ``deepfake-lab serve --model MODEL --port P ARGS`` until the block ends.

    Args:
        model: what ``--model`` takes.
        tmp: the server's ``TMPDIR`` (created); its log is ``tmp/../server-PORT.log``.
        args: further options (default: centre crops, the Haar face detector bundled with
            OpenCV, so nothing is downloaded, and the CPU).
        env: extra environment variables.
        timeout: seconds to wait for ``/healthz``.

    Yields:
        The running server; it is stopped with SIGTERM (then killed) when the block ends.

    Raises:
        RuntimeError: the server exited before answering (its log is in the message).
    """
    tmp.mkdir(parents=True, exist_ok=True)
    for _ in range(3):  # another process may take the free port before the server binds it
        port = free_port()
        log = tmp.parent / f"server-{port}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                serve_command("--model", str(model), "--port", str(port), *args),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=serve_env(tmp, env),
            )
        server = LiveServer(proc, f"http://127.0.0.1:{port}", tmp, log)
        try:
            ready = _wait_ready(server, timeout)
        except BaseException:
            server.stop(signal.SIGKILL)
            raise
        if ready:
            break
        text = log.read_text(errors="replace")
        if "address already in use" not in text:
            raise RuntimeError(f"the server exited with status {proc.returncode}:\n{text}")
    else:
        raise RuntimeError("no free port could be bound in 3 tries")
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.stop()


def post_oversized(url: str, data: bytes, name: str, timeout: float = 60) -> tuple[int, dict]:
    """POST an upload the server will refuse part-way: it may answer 413 and close before
    the body is sent, so the client's send can fail with a broken pipe (more likely on a
    loaded machine). The answer is read all the same; ``(0, {})`` when the connection was
    reset before it could be read."""
    import http.client
    import urllib.parse

    boundary = "deepfake-lab-test-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        try:
            conn.request(
                "POST",
                parts.path,
                body=body,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading; its answer may already be here
        try:
            res = conn.getresponse()
            return res.status, json.loads(res.read())
        except (ConnectionResetError, http.client.RemoteDisconnected):
            return 0, {}
    finally:
        conn.close()


def post_file(
    url: str, data: bytes, name: str = "upload", timeout: float = 60, **fields: str
) -> tuple[int, dict]:
    """POST ``data`` as the multipart ``file`` field (plus text ``fields``) with urllib;
    returns the status and the decoded JSON answer."""
    boundary = "deepfake-lab-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(
        url,
        data=b"".join(parts),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())
