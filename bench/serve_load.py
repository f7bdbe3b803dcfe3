"""Benchmark: ``deepfake-lab serve`` under load: N concurrent clients against localhost for a
bounded time, a share of them hostile, in rounds of growing length on one server process.

    python bench/serve_load.py [--model RUN] [--clients 4] [--seconds 30] [--rounds 2]
        [--hostile-share 0.2] [--video-share 0.05] [--explain-share 0.5]

Each client thread keeps one HTTP connection and posts, in a random order: small images (PNG
and JPEG, 64-256 px; some with ``explain=1``), short videos (then polls the job until it is
done), and hostile uploads (a truncated PNG, PDF bytes, an ffconcat script, a PNG header
claiming 10 gigapixels, an MP4 cut before its index, and a body over ``--max-mb``). Per round
it prints requests/s, p50/p95 latency (a video's runs until its job is done), the ``503``
answers (busy: the bounds at work) and the errors (a connection failure or any other status
than the one expected), and the server's resident memory (``VmRSS``) at the start, middle and
end, and its peak. Round ``k`` lasts ``k x --seconds``: the server's memory must not grow with
the number of requests it has answered.

Without ``--model`` a tiny ``npr`` detector (16 px) is trained first on procedural faces
(a few seconds), so the numbers are those of the service around the detector: upload,
checks, decoding, scoring, provenance. The server scores centre crops (``--no-faces``) and
finds faces in videos with the Haar detector bundled with OpenCV, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The test helpers start the real server and make the toy detector and media: one copy.
sys.path.insert(0, str(ROOT / "tests"))

from serve_toys import HOSTILE, LiveServer, live_server, mp4_bytes, png_bytes  # noqa: E402

BOUNDARY = "deepfake-lab-bench-boundary"


@dataclass
class Upload:
    """One kind of request: its body, the file name sent, and the statuses it may get."""

    kind: str  # "image", "video" or "hostile"
    name: str
    data: bytes
    expect: int
    explain: bool = False


@dataclass
class Result:
    kind: str
    status: int | None  # None: the connection failed
    seconds: float
    expected: bool


@dataclass
class Round:
    seconds: float
    results: list[Result] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)  # start, middle, end
    peak_kb: int = 0  # the most of the samples taken every 0.25 s


def jpeg_bytes(seed: int, size: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(png_bytes(seed, size))).convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def uploads(work: Path, max_bytes: int) -> dict[str, list[Upload]]:
    """The requests the clients draw from, by kind."""
    images = [Upload("image", f"img{s}.png", png_bytes(s, s * 64), 200) for s in (1, 2, 4)]
    images += [Upload("image", f"img{s}.jpg", jpeg_bytes(s, s * 64), 200) for s in (1, 3)]
    clip = mp4_bytes(work / "clip.mp4", frames=10, size=64)
    hostile = [Upload("hostile", name, data, want) for name, (data, want) in HOSTILE.items()]
    hostile.append(Upload("hostile", "big.png", b"\x89PNG\r\n\x1a\n" + bytes(max_bytes), 413))
    return {"image": images, "video": [Upload("video", "clip.mp4", clip, 202)], "hostile": hostile}


def multipart(up: Upload) -> bytes:
    head = b""
    if up.explain:
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="explain"\r\n\r\n1\r\n'.encode()
        )
    return (
        head
        + f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{up.name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + up.data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


class Client:
    """One HTTP/1.1 connection, reopened after a failure or a refusal that closed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"} if body else {}
        try:
            self.conn.request(method, path, body=body, headers=headers)
            res = self.conn.getresponse()
            data = res.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if res.will_close:
            self.close()
        return res.status, data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def one(client: Client, up: Upload) -> Result:
    """Send one upload (and, for a video, wait for its job); the answer and its time."""
    start = time.perf_counter()
    try:
        status, body = client.request("POST", "/api/v1/detect", multipart(up))
        if up.kind == "video" and status == 202:
            url = json.loads(body)["url"]
            while True:
                code, answer = client.request("GET", url)
                job = json.loads(answer)
                if code != 200 or job["status"] in {"done", "error"}:
                    status = 200 if code == 200 and job["status"] == "done" else 500
                    break
                time.sleep(0.1)
    except (OSError, http.client.HTTPException, ValueError, KeyError):
        return Result(up.kind, None, time.perf_counter() - start, False)
    seconds = time.perf_counter() - start
    want = 200 if up.kind == "video" else up.expect
    return Result(up.kind, status, seconds, status in {want, 503})


def run_round(
    server: LiveServer,
    port: int,
    pool: dict[str, list[Upload]],
    args: argparse.Namespace,
    seconds: float,
    seed: int,
) -> Round:
    """``args.clients`` threads posting for ``seconds``; the server's RSS read at the start,
    middle and end (idle: every request answered), and its peak over samples every 0.25 s
    (a single reading swings by the ~200 MB of an image's watermark search in flight)."""
    out = Round(seconds, rss_kb=[server.rss_kb()])
    out.peak_kb = out.rss_kb[0]
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def client_loop(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        client = Client(port)
        while time.monotonic() < end:
            draw = rng.random()
            if draw < args.hostile_share:
                up = rng.choice(pool["hostile"])
            elif draw < args.hostile_share + args.video_share:
                up = pool["video"][0]
            else:
                base = rng.choice(pool["image"])
                up = Upload(**{**base.__dict__, "explain": rng.random() < args.explain_share})
            result = one(client, up)
            with lock:
                out.results.append(result)
        client.close()

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    middle = time.monotonic() + seconds / 2
    while any(t.is_alive() for t in threads):
        rss = server.rss_kb()
        out.peak_kb = max(out.peak_kb, rss)
        if middle is not None and time.monotonic() >= middle:
            out.rss_kb.append(rss)
            middle = None
        time.sleep(0.25)
    out.rss_kb.append(server.rss_kb())
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1]
        if len(values) > 1
        else values[0]
    )


def print_tables(rounds: list[Round], args: argparse.Namespace) -> None:
    print(
        f"\n{args.clients} clients, hostile share {args.hostile_share}, video share "
        f"{args.video_share}, explain share {args.explain_share}\n"
    )
    columns = ["round", "s", "requests", "req/s", "p50 ms", "p95 ms", "503 busy", "errors"]
    columns += ["RSS MB start / middle / end", "RSS MB peak"]
    print("| " + " | ".join(columns) + " |")
    print("|---" * len(columns) + "|")
    for k, r in enumerate(rounds, 1):
        times = [x.seconds * 1000 for x in r.results]
        busy = sum(x.status == 503 for x in r.results)
        errors = sum(not x.expected for x in r.results)
        rss = " / ".join(f"{kb / 1024:.0f}" for kb in r.rss_kb)
        print(
            f"| {k} | {r.seconds:.0f} | {len(times)} | {len(times) / r.seconds:.1f} | "
            f"{pct(times, 50):.0f} | {pct(times, 95):.0f} | {busy} | {errors} | {rss} | "
            f"{r.peak_kb / 1024:.0f} |"
        )
    print("\n| kind | requests | p50 ms | p95 ms | statuses |")
    print("|---|---|---|---|---|")
    every = [x for r in rounds for x in r.results]
    for kind in ("image", "video", "hostile"):
        mine = [x for x in every if x.kind == kind]
        times = [x.seconds * 1000 for x in mine]
        codes = Counter("failed" if x.status is None else x.status for x in mine)
        shown = ", ".join(f"{c}: {n}" for c, n in sorted(codes.items(), key=str))
        print(f"| {kind} | {len(mine)} | {pct(times, 50):.0f} | {pct(times, 95):.0f} | {shown} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="detector run, checkpoint or export (default: a toy)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30, help="length of round 1")
    ap.add_argument("--rounds", type=int, default=2, help="round k lasts k x --seconds")
    ap.add_argument("--hostile-share", type=float, default=0.2)
    ap.add_argument("--video-share", type=float, default=0.05)
    ap.add_argument("--explain-share", type=float, default=0.5)
    ap.add_argument("--max-mb", type=float, default=2.0, help="the server's --max-mb")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.clients < 1 or args.rounds < 1 or args.seconds <= 0:
        ap.error("--clients and --rounds must be 1 or more, --seconds above 0")
    if not 0 <= args.hostile_share + args.video_share <= 1:
        ap.error("--hostile-share plus --video-share must be in [0, 1]")

    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        work = Path(tmp)
        model = args.model
        if model is None:
            from detector_toys import make_toy_sets, train_toy

            model = str(train_toy(make_toy_sets(work / "toy")))
        pool = uploads(work, int(args.max_mb * 2**20))
        server_args = ["--no-faces", "--face-detector", "haar", "--device", args.device]
        server_args += ["--max-mb", str(args.max_mb)]
        with live_server(model, work / "server-tmp", server_args) as server:
            port = int(server.url.rsplit(":", 1)[1])
            rounds = []
            for k in range(1, args.rounds + 1):
                rounds.append(run_round(server, port, pool, args, k * args.seconds, k))
            status = server.stop()
            left = server.private_dirs()
        print_tables(rounds, args)
        print(f"\nserver exit status {status}; private folders left: {len(left)}")


if __name__ == "__main__":
    main()
