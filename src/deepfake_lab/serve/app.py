"""The FastAPI application of ``deepfake-lab serve``.

Endpoints (OpenAPI at ``/docs``):

- ``GET /healthz``: status, version, models, job counts, limits (no key needed).
- ``GET /api/v1/models``: the detectors this server answers with.
- ``POST /api/v1/detect`` (multipart ``file``; optional ``model``, ``explain``): an image
  is answered at once with the ``detect --json`` record (plus per-face scores, the
  provenance reading and, with ``explain``, Grad-CAM overlays as PNG data URLs); a video
  becomes a job: ``202`` with its id.
- ``GET /api/v1/jobs/{id}``: a job's status, progress and, when done, its record.
- ``GET /api/v1/jobs/{id}/timeline.png``: the video's score timeline.
- ``GET /``: the page.

Every refusal is a 4xx (or 503 when busy) with ``{"detail": "one line"}``; no upload is
kept past its answer (video jobs: past their TTL).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import re
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from deepfake_lab import __version__
from deepfake_lab.errors import UserError
from deepfake_lab.serve.jobs import Job, JobQueue, QueueFull
from deepfake_lab.serve.limits import SNIFF_BYTES, ServeLimits, check_video_header, sniff
from deepfake_lab.serve.models import ModelSet

STATIC = Path(__file__).parent / "static"
#: Room for the multipart framing and the small form fields beside the file.
FORM_OVERHEAD = 64 * 1024
API_KEY_HEADER = "x-api-key"


class _TooLarge(Exception):
    pass


def create_app(
    models: ModelSet,
    limits: ServeLimits | None = None,
    api_key: str | None = None,
    cors_origins: list[str] | None = None,
    work_dir: str | Path | None = None,
) -> FastAPI:
    """The application.

    Args:
        models: the loaded detectors.
        limits: upload and queue bounds (default ``ServeLimits()``).
        api_key: when set, every ``/api/`` request must carry it (``X-API-Key`` or
            ``Authorization: Bearer``).
        cors_origins: origins allowed to call the API from a browser (default: none).
        work_dir: parent of the server's private temp folder (default: the system's).
    """
    limits = limits or ServeLimits()
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="deepfake-lab-serve-", dir=work_dir))
    root.chmod(0o700)
    (root / "jobs").mkdir(mode=0o700, exist_ok=True)
    jobs = JobQueue(
        root / "jobs", limits.workers, limits.max_waiting, limits.job_ttl_s, limits.max_kept_jobs
    )
    # Image scans run on threads of their own, max_image_requests of them, always the same:
    # memory then settles (glibc's per-thread arenas and torch's per-thread pools are made
    # once) instead of creeping as the work wanders over anyio's 40 threads, and the event
    # loop never decodes. A request holds a slot from admission until its scan ends.
    image_pool = ThreadPoolExecutor(limits.max_image_requests, thread_name_prefix="image-scan")
    image_slots = threading.BoundedSemaphore(limits.max_image_requests + limits.max_image_waiting)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        image_pool.shutdown(wait=True, cancel_futures=True)
        jobs.close()
        shutil.rmtree(root, ignore_errors=True)

    app = FastAPI(
        title="deepfake-lab",
        version=__version__,
        description="Is this image or video likely synthetic, why, and does it carry "
        "provenance? Scores from the detectors this server was started with.",
        lifespan=lifespan,
    )
    app.state.jobs, app.state.root, app.state.models = jobs, root, models
    app.state.image_slots = image_slots
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=[API_KEY_HEADER, "authorization"],
        )

    def authorised(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get(API_KEY_HEADER) or ""
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            given = given or bearer[7:].strip()
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong API key (send it as X-API-Key)")

    @app.exception_handler(UserError)
    async def _user_error(_: Request, exc: UserError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Status, version, loaded models, jobs per status and the limits."""
        return {
            "status": "ok",
            "version": __version__,
            "models": models.describe(),
            "jobs": jobs.counts(),
            "limits": limits.__dict__,
            "api_key_required": api_key is not None,
        }

    @app.get("/api/v1/models", dependencies=[Depends(authorised)])
    def list_models() -> list[dict[str, Any]]:
        """The detectors this server answers with; the first is the default."""
        return models.describe()

    @app.post("/api/v1/detect", dependencies=[Depends(authorised)])
    async def detect(request: Request) -> JSONResponse:
        """Score one uploaded image (answered at once) or video (a job).

        Multipart fields: ``file`` (the media), ``model`` (an id from ``/api/v1/models``;
        default the first), ``explain`` (``1``: Grad-CAM overlays with the image answer).
        """
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_bytes + FORM_OVERHEAD:
            raise HTTPException(413, f"the upload is over {limits.max_bytes} bytes")
        folder = Path(tempfile.mkdtemp(dir=root))
        try:
            form_file, fields = await _read_form(request, limits)
            try:
                model = models.pick(fields.get("model"))
                kind, path = await run_in_threadpool(_store, form_file, folder, limits.max_bytes)
            finally:
                await form_file.close()
            name = _display_name(form_file.filename)
            if kind == "image":
                return await _image(
                    model, path, folder, name, fields.get("explain") in {"1", "true", "on"}
                )
            return await _video(model, path, folder, name)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    async def _image(
        model: Any, path: Path, folder: Path, name: str, explain: bool
    ) -> JSONResponse:
        if not image_slots.acquire(blocking=False):
            raise HTTPException(503, "the server is busy with other images; try again shortly")
        try:
            future = image_pool.submit(_scan_image, model, path, folder, explain)
        except BaseException:
            image_slots.release()
            raise
        # Released when the scan ends, not when this request does: a client that goes
        # away leaves its scan running, and that still counts.
        future.add_done_callback(lambda _: image_slots.release())
        record = await asyncio.wrap_future(future)
        record["filename"] = name
        record.pop("path", None)
        return JSONResponse(record)

    def _scan_image(model: Any, path: Path, folder: Path, explain: bool) -> dict[str, Any]:
        """Check, score and read the provenance of one image (on an image-scan thread)."""
        try:
            _check_image(path, limits)
            explain_dir = folder / "explain" if explain else None
            record = models.scan_image(model, path, explain_dir)
            record["provenance"] = models.provenance(path)
            if explain_dir is not None:
                record["explain"] = _data_urls(explain_dir)
            return record
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    async def _video(model: Any, path: Path, folder: Path, name: str) -> JSONResponse:
        from deepfake_lab.safe_text import file_stem
        from deepfake_lab.video.decode import probe

        try:
            info = await run_in_threadpool(probe, path)
        except UserError as exc:  # what PyAV cannot open: a 422 that names the client's file
            raise HTTPException(422, _private(str(exc), path, root, name)) from None
        check_video_header(info.duration_s, info.n_frames, info.fps, limits)
        job = jobs.new_job(name, model.id)
        # Named after the client's file (cleaned): the timeline's title shows this name.
        stem = file_stem(name.rsplit(".", 1)[0] or "upload", reserve=len(path.suffix))
        moved = job.folder / f"{stem}{path.suffix}"
        shutil.move(str(path), moved)
        shutil.rmtree(folder, ignore_errors=True)

        def work(job: Job) -> dict[str, Any]:
            def progress(kind: str, done: int, total: int | None) -> None:
                if kind == "frames":
                    job.progress = {"frames": done, "expected": total}

            try:
                record = models.scan_video(model, moved, job.folder, limits.scan_frames, progress)
            except UserError as exc:  # the job's one error line, without server paths
                raise UserError(_private(str(exc), moved, root, job.filename)) from None
            except Exception as exc:
                text = f"the scan failed: {type(exc).__name__}: {exc}"
                raise UserError(_private(text, moved, root, job.filename)) from None
            finally:
                moved.unlink(missing_ok=True)  # the upload goes as soon as it is scanned
            record.pop("path", None)
            record.pop("not_written", None)  # why a picture failed, with server paths
            if record.get("error"):
                record["error"] = _private(record["error"], moved, root, job.filename)
            record["filename"] = job.filename
            timeline = next(job.folder.glob("*.timeline.png"), None)
            record["timeline"] = f"/api/v1/jobs/{job.id}/timeline.png" if timeline else None
            return record

        try:
            jobs.submit(job, work)
        except QueueFull:
            raise HTTPException(503, "too many videos are waiting; try again later") from None
        return JSONResponse(
            {"job": job.id, "status": job.status, "url": f"/api/v1/jobs/{job.id}"},
            status_code=202,
        )

    @app.get("/api/v1/jobs/{job_id}", dependencies=[Depends(authorised)])
    def job_status(job_id: str) -> dict[str, Any]:
        """A video job: status (queued, running, done, error), progress, result or error."""
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, "no such job (unknown, or its results expired)")
        return job.public()

    @app.get("/api/v1/jobs/{job_id}/timeline.png", dependencies=[Depends(authorised)])
    def job_timeline(job_id: str) -> FileResponse:
        """The video's per-frame score timeline (once the job is done)."""
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, "no such job (unknown, or its results expired)")
        timeline = next(job.folder.glob("*.timeline.png"), None) if job.status == "done" else None
        if timeline is None:
            raise HTTPException(404, "no timeline for this job (not done, or no face was scored)")
        return FileResponse(timeline, media_type="image/png")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def _read_form(request: Request, limits: ServeLimits) -> tuple[Any, dict[str, str]]:
    """The uploaded file and the text fields of a multipart request, read within the limits.

    Raises:
        HTTPException: 413 past ``max_bytes``, 400 for a request without a ``file``.
    """
    received = 0
    receive = request._receive  # count the body as it streams in, whatever its framing

    async def counting() -> Any:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > limits.max_bytes + FORM_OVERHEAD:
            raise _TooLarge
        return message

    request._receive = counting
    try:
        form = await request.form(max_files=1, max_fields=8)
    except _TooLarge:
        raise HTTPException(413, f"the upload is over {limits.max_bytes} bytes") from None
    except HTTPException:
        raise
    except Exception as exc:  # a malformed body is the client's mistake
        raise HTTPException(400, f"not a multipart upload: {exc}") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise HTTPException(400, "send the media as a multipart field named 'file'")
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    return upload, fields


def _store(upload: Any, folder: Path, max_bytes: int) -> tuple[str, Path]:
    """Copy the upload into ``folder`` under a name of our own with the sniffed suffix.

    Raises:
        HTTPException: 415 when it is not an image or video we read, 400 when empty, 413
            over ``max_bytes`` (the body's limit allows room for the form around the file).
    """
    src = upload.file
    if src.seek(0, 2) > max_bytes:
        raise HTTPException(413, f"the upload is over {max_bytes} bytes")
    src.seek(0)
    head = src.read(SNIFF_BYTES)
    if not head:
        raise HTTPException(400, "the file is empty")
    found = sniff(head)
    if found is None:
        raise HTTPException(
            415, "not an image (PNG, JPEG, WebP, BMP) or video (MP4, MOV, MKV, WebM, AVI, MPEG)"
        )
    kind, suffix = found
    path = folder / f"upload{suffix}"
    src.seek(0)
    with open(path, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return kind, path


def _check_image(path: Path, limits: ServeLimits) -> None:
    """Refuse an image over the pixel limit, or one that does not decode, with a 422."""
    from deepfake_lab.data.decode import DecodeError, decode_image

    try:
        decode_image(path, max_pixels=limits.max_pixels)
    except DecodeError as exc:
        if exc.transient:  # out of memory or I/O: the file may be fine
            raise HTTPException(503, "the server could not read the image now; try again") from None
        # The detail's "(raise --max-pixels ...)" speaks to a command-line user, not a client.
        detail = re.sub(r" \(raise --[\w-]+ to accept it\)", "", exc.detail)
        raise HTTPException(422, f"the image cannot be read: {detail}") from None


def _display_name(name: str | None) -> str:
    """The client's file name for display: control characters dropped, at most 200 chars.
    (The page shows it as text, never as HTML.)"""
    text = "".join(c for c in (name or "upload") if c.isprintable())
    return text[:200] or "upload"


def _private(text: str, path: Path, root: Path, name: str) -> str:
    """``text`` as one error line for the client: the upload's server path replaced by the
    client's name, any other path under the server's private folder cut to ``...``."""
    text = text.replace(str(path), name).replace(str(root), "...")
    return " ".join(text.splitlines())


def _data_urls(folder: Path) -> list[str]:
    return [
        "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii")
        for p in sorted(folder.glob("*.png"))
    ]
