"""The page of ``deepfake-lab serve`` in a real browser: headless Chromium loads it from the
real server, uploads an image and a short video through its file input, and the verdicts and
the video's timeline appear; a screenshot is saved.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON
messages ending in NUL on file descriptors 3 and 4), so no client library is needed. Skipped
when no Chromium is installed (Debian: ``apt-get install chromium``; ``$CHROMIUM`` names
another binary).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from detector_toys import make_toy_sets, train_toy
from serve_toys import live_server, mp4_bytes, png_bytes

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH, HEIGHT = 1100, 1400


def chromium_or_skip() -> str:
    """The Chromium binary (``$CHROMIUM``, else the first of :data:`BROWSERS` on PATH)."""
    named = os.environ.get("CHROMIUM")
    found = shutil.which(named) if named else next(filter(None, map(shutil.which, BROWSERS)), None)
    if found is None:
        pytest.skip(
            "headless Chromium is not installed (Debian: apt-get install chromium; or set "
            "$CHROMIUM to a Chrome/Chromium binary)"
        )
    return found


class Chromium:
    """A headless Chromium and a DevTools-protocol connection to it over a pipe.

    Args:
        binary: the browser.
        profile: an empty folder for its profile.
        log: where its stderr goes.
    """

    def __init__(self, binary: str, profile: Path, log: Path) -> None:
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        flags = [
            "--headless",
            # The page is our own, from localhost; CI containers have no user namespaces
            # for the sandbox, and root may not use it at all.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}",
            "about:blank",
        ]
        # The protocol pipe must be descriptors 3 (commands in) and 4 (answers out); bash,
        # not sh: dash takes no descriptor numbers above 9.
        r, w = to_chrome_r, from_chrome_w
        script = f'exec "$0" "$@" 3<&{r} 4>&{w} {r}<&- {w}>&-'
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                ["bash", "-c", script, binary, *flags],
                pass_fds=(to_chrome_r, from_chrome_w),
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,  # its helper processes go with it
            )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def send(
        self, method: str, params: dict | None = None, session: str | None = None, timeout=60
    ) -> dict[str, Any]:
        """Send one command and return its result (events that arrive meanwhile are kept
        in :attr:`events`).

        Raises:
            RuntimeError: the browser answered with an error, or exited.
        """
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._w, data) :]
        deadline = time.monotonic() + timeout
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            if select.select([self._r], [], [], left)[0]:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium exited (status {self.proc.poll()})")
                self._buf += chunk
        message, _, self._buf = self._buf.partition(b"\0")
        return json.loads(message)

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.send("Browser.close", timeout=10)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        os.close(self._r)
        os.close(self._w)


@contextlib.contextmanager
def page_session(browser: Chromium) -> Iterator[Any]:
    """A new tab; yields ``send(method, params)`` bound to it."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    attach = {"targetId": target, "flatten": True}
    session = browser.send("Target.attachToTarget", attach)["sessionId"]

    def send(method: str, params: dict | None = None) -> dict[str, Any]:
        return browser.send(method, params, session)

    yield send


def evaluate(send: Any, expression: str) -> Any:
    """The value of a JavaScript expression in the page."""
    result = send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
    if "exceptionDetails" in result:
        raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
    return result["result"].get("value")


def wait_until(send: Any, expression: str, what: str, timeout: float = 120) -> Any:
    """Evaluate ``expression`` until it is truthy; returns that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = evaluate(send, expression)
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s; the page has {state(send)}")


# What each card shows: its name, verdict (text and class), details and timeline pictures.
CARDS = """Array.from(document.querySelectorAll("#results .card")).map((c) => ({
  name: c.querySelector(".name").textContent,
  verdict: c.querySelector(".verdict").textContent,
  label: c.querySelector(".verdict").className,
  detail: c.querySelector(".detail").textContent,
  timeline: Array.from(c.querySelectorAll("img.timeline")).map((i) => i.complete && i.naturalWidth),
  heatmaps: c.querySelectorAll("img.face").length,
  bar: !c.querySelector(".bar").hidden,
}))"""
# Both cards answered (no "Uploading…" or "Scanning…" left) and the timeline drawn: the cards,
# else false.
ANSWERED = f"""(() => {{ const cards = {CARDS};
  return cards.length === 2 && cards.every((c) => !c.verdict.endsWith("…"))
    && cards.some((c) => c.timeline.length && c.timeline.every((w) => w > 0))
    && JSON.stringify(cards); }})()"""


def state(send: Any) -> list[dict[str, Any]]:
    return evaluate(send, CARDS)


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_skip()  # before the toy model: a skip costs no training


@pytest.fixture(scope="module")
def toy_model(chromium, tmp_path_factory) -> Path:
    return train_toy(make_toy_sets(tmp_path_factory.mktemp("browser-toy")))


@pytest.mark.slow
def test_the_page_scans_an_image_and_a_video_in_a_real_browser(
    chromium, toy_model, tmp_path
) -> None:
    photo, clip = tmp_path / "photo.png", tmp_path / "clip.mp4"
    photo.write_bytes(png_bytes(size=64))
    mp4_bytes(clip, frames=10, size=64)
    (tmp_path / "profile").mkdir()
    browser = Chromium(chromium, tmp_path / "profile", tmp_path / "chromium.log")
    try:
        with live_server(toy_model, tmp_path / "tmp") as server, page_session(browser) as send:
            send("Runtime.enable")
            send("Page.enable")
            metrics = {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}
            send("Emulation.setDeviceMetricsOverride", metrics)
            send("Page.navigate", {"url": server.url + "/"})
            wait_until(send, "document.querySelectorAll('#model option').length", "the models")

            root = send("DOM.getDocument")["root"]["nodeId"]
            files = send("DOM.querySelector", {"nodeId": root, "selector": "#files"})["nodeId"]
            # Both at once, as a user choosing two files: the page uploads them in turn.
            send("DOM.setFileInputFiles", {"nodeId": files, "files": [str(photo), str(clip)]})
            answered = wait_until(send, ANSWERED, "the verdicts and the timeline")
            cards = {c["name"]: c for c in json.loads(answered)}

            image, video = cards["photo.png"], cards["clip.mp4"]
            assert image["label"] in {"verdict real", "verdict fake"}, image
            assert image["verdict"] in {
                "Likely synthetic or manipulated",
                "No sign of manipulation found by this detector",
            }
            assert "P(fake)" in image["detail"] and "threshold" in image["detail"]
            assert image["heatmaps"] >= 1 and image["bar"]  # Grad-CAM is on by default
            assert video["label"] == "verdict no_face" and "10 frames" in video["detail"]
            assert not video["bar"]  # no score, no score bar
            assert video["timeline"] and all(w > 0 for w in video["timeline"])

            shot = send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
            path = tmp_path / "page.png"
            path.write_bytes(base64.b64decode(shot["data"]))
    finally:
        browser.close()
    errors = [
        e
        for e in browser.events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
    ]
    assert errors == []  # the page's script ran without an error
    with Image.open(path) as shot_image:
        assert shot_image.width == WIDTH and shot_image.height >= 400
        pixels = np.asarray(shot_image.convert("RGB"))
    assert pixels.std() > 10  # text, cards and pictures: not a blank page
