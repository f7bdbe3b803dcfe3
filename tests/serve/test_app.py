"""``deepfake-lab serve``: the API through FastAPI's test client, with a tiny trained detector.

Images are answered at once with the ``detect --json`` record; videos become jobs; every
refusal is a 4xx (503 when busy) with a one-line reason, and nothing outlives its answer.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deepfake_lab.serve.app import create_app
from deepfake_lab.serve.limits import ServeLimits
from deepfake_lab.serve.models import ModelSet
from detector_toys import make_toy_sets, train_toy
from serve_toys import HOSTILE, mp4_bytes, png_bytes


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory) -> Path:
    return train_toy(make_toy_sets(tmp_path_factory.mktemp("serve-toy")))


@pytest.fixture(scope="module")
def models(toy_model) -> ModelSet:
    return ModelSet([str(toy_model)], device="cpu", faces=False, face_detector="haar")


def _client(models, tmp_path, **kw) -> TestClient:
    limits = kw.pop("limits", ServeLimits(max_bytes=2_000_000, scan_frames=4))
    return TestClient(create_app(models, limits, work_dir=tmp_path, **kw))


def _private_files(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("*") if p.is_file()]


def test_healthz_names_the_models_and_limits(models, tmp_path) -> None:
    with _client(models, tmp_path) as client:
        body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["models"][0]["id"] == models.default
    assert body["models"][0]["tta"] == "none"  # the test-time view the threshold holds for
    assert body["limits"]["max_bytes"] == 2_000_000 and body["api_key_required"] is False


def test_an_image_is_answered_at_once_with_the_detect_record(models, tmp_path) -> None:
    with _client(models, tmp_path) as client:
        res = client.post("/api/v1/detect", files={"file": ("a.png", png_bytes(), "image/png")})
        assert res.status_code == 200, res.text
        r = res.json()
        assert r["label"] in {"real", "fake"} and 0 <= r["probability"] <= 1
        assert r["model"] == models.default and 0 <= r["threshold"] <= 1
        assert r["filename"] == "a.png" and "path" not in r  # the server's name stays private
        assert r["watermark"] is False and r["provenance"]["verdict"] == "none found"
        assert _private_files(tmp_path) == []  # nothing kept after the answer


def test_the_answer_matches_detect_on_the_same_file(models, toy_model, tmp_path) -> None:
    from deepfake_lab.detect import detect_images

    data = png_bytes(3)
    (tmp_path / "same.png").write_bytes(data)
    cli = detect_images(toy_model, [tmp_path / "same.png"], device="cpu")[0]
    with _client(models, tmp_path / "srv") as client:
        r = client.post("/api/v1/detect", files={"file": ("x.png", data)}).json()
    assert r["probability"] == pytest.approx(cli["probability"], abs=1e-6)
    assert r["label"] == cli["label"]


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        (b"", 400, "empty"),
        (b"%PDF-1.7 not media", 415, "not an image"),
        (b"ffconcat version 1.0\nfile /etc/passwd\n", 415, "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, 422, "cannot be read"),  # a truncated PNG
    ],
)
def test_hostile_uploads_get_a_4xx_and_one_line(models, tmp_path, payload, status, words) -> None:
    with _client(models, tmp_path) as client:
        res = client.post("/api/v1/detect", files={"file": ("x.png", payload)})
        assert res.status_code == status, res.text
        detail = res.json()["detail"]
        assert words in detail and "\n" not in detail
        assert client.get("/healthz").status_code == 200  # still serving
    assert _private_files(tmp_path) == []


def test_a_video_that_does_not_open_is_named_as_the_client_named_it(models, tmp_path) -> None:
    data, _ = HOSTILE["cut.mp4"]
    with _client(models, tmp_path) as client:
        res = client.post("/api/v1/detect", files={"file": ("holiday.mp4", data)})
    detail = res.json()["detail"]
    assert res.status_code == 422 and detail.startswith("holiday.mp4: ")
    assert str(tmp_path) not in detail and "upload" not in detail  # no server path or name
    assert _private_files(tmp_path) == []


def test_uploads_over_the_limits_are_refused(models, tmp_path) -> None:
    limits = ServeLimits(max_bytes=10_000, max_pixels=100)
    with _client(models, tmp_path, limits=limits) as client:
        big = client.post("/api/v1/detect", files={"file": ("b.png", b"\x89PNG" + b"0" * 200_000)})
        assert big.status_code == 413
        # Just over: within the room the body's limit leaves for the form around the file.
        just = client.post("/api/v1/detect", files={"file": ("j.png", png_bytes() + bytes(10_000))})
        assert just.status_code == 413 and "over 10000 bytes" in just.json()["detail"]
        wide = client.post("/api/v1/detect", files={"file": ("w.png", png_bytes(size=16))})
        assert wide.status_code == 422 and "over the limit" in wide.json()["detail"]
        missing = client.post("/api/v1/detect", data={"model": "x"})
        assert missing.status_code == 400 and "'file'" in missing.json()["detail"]
        unknown = client.post(
            "/api/v1/detect", files={"file": ("a.png", png_bytes())}, data={"model": "nosuch"}
        )
        assert unknown.status_code == 422 and "unknown model" in unknown.json()["detail"]


def test_a_hostile_file_name_is_shown_as_text_only(models, tmp_path) -> None:
    name = "[bold]x$\\foo$\u202egnp.exe<script>.png"
    with _client(models, tmp_path) as client:
        r = client.post("/api/v1/detect", files={"file": (name, png_bytes())}).json()
    assert "\u202e" not in r["filename"] and r["filename"].startswith("[bold]x$\\foo$")


def test_a_video_becomes_a_job_with_progress_and_a_result(models, tmp_path) -> None:
    data = mp4_bytes(tmp_path / "clip.mp4")
    with _client(models, tmp_path / "srv") as client:
        res = client.post("/api/v1/detect", files={"file": ("clip.mp4", data, "video/mp4")})
        assert res.status_code == 202, res.text
        url = res.json()["url"]
        for _ in range(300):
            job = client.get(url).json()
            if job["status"] in {"done", "error"}:
                break
            time.sleep(0.1)
        assert job["status"] == "done", job
        r = job["result"]
        assert r["filename"] == "clip.mp4" and r["model"] == models.default
        assert r["label"] in {"fake", "real", "no_face"} and "path" not in r
        assert not list((tmp_path / "srv").rglob("upload.mp4"))  # gone once scanned
        assert client.get(url + "x").status_code == 404


def test_api_key_is_required_when_set(models, tmp_path) -> None:
    with _client(models, tmp_path, api_key="s3cret") as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/v1/models").status_code == 401
        assert client.get("/api/v1/models", headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.get("/api/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        bearer = {"Authorization": "Bearer s3cret"}
        assert client.get("/api/v1/models", headers=bearer).status_code == 200


def test_a_full_queue_answers_503(models, tmp_path) -> None:
    limits = ServeLimits(max_waiting=1, workers=1, scan_frames=4)
    data = mp4_bytes(tmp_path / "clip.mp4")
    with _client(models, tmp_path / "srv", limits=limits) as client:
        app_jobs = client.app.state.jobs
        gate = threading.Event()
        blocker = app_jobs.new_job("block", "m")
        app_jobs.submit(blocker, lambda job: gate.wait(10) and {})
        while blocker.status == "queued":  # the worker has taken it: the queue is empty
            time.sleep(0.01)
        app_jobs.submit(app_jobs.new_job("wait", "m"), lambda job: {})
        try:
            res = client.post("/api/v1/detect", files={"file": ("clip.mp4", data)})
            assert res.status_code == 503 and "try again" in res.json()["detail"]
        finally:
            gate.set()


def test_the_page_is_served_without_anything_from_elsewhere(models, tmp_path) -> None:
    with _client(models, tmp_path) as client:
        page = client.get("/")
        assert page.status_code == 200 and "<title>deepfake-lab" in page.text
        for asset in ("/static/app.js", "/static/style.css"):
            body = client.get(asset)
            assert body.status_code == 200
            assert "http://" not in body.text and "https://" not in body.text
        assert "innerHTML" not in client.get("/static/app.js").text
        assert client.get("/docs").status_code == 200


def test_images_past_the_scans_and_waiting_room_answer_503(models, tmp_path) -> None:
    limits = ServeLimits(max_image_requests=1, max_image_waiting=1)
    with _client(models, tmp_path, limits=limits) as client:
        slots = client.app.state.image_slots
        assert slots.acquire(blocking=False) and slots.acquire(blocking=False)  # both taken
        try:
            res = client.post("/api/v1/detect", files={"file": ("a.png", png_bytes())})
            assert res.status_code == 503 and "try again" in res.json()["detail"]
        finally:
            slots.release()
            slots.release()
        assert client.post("/api/v1/detect", files={"file": ("a.png", png_bytes())}).is_success
    assert _private_files(tmp_path) == []


def test_finished_jobs_past_the_cap_go_oldest_first(tmp_path) -> None:
    from deepfake_lab.serve.jobs import JobQueue

    queue = JobQueue(tmp_path, workers=1, max_waiting=4, ttl_s=900, max_kept=2)
    try:
        jobs = [queue.new_job(f"v{i}.mp4", "m") for i in range(3)]
        for job in jobs:
            queue.submit(job, lambda job: {"ok": True})
        while any(job.finished is None for job in jobs):
            time.sleep(0.01)
        queue.expire()
        assert queue.get(jobs[0].id) is None and not jobs[0].folder.exists()
        assert [queue.get(j.id).result for j in jobs[1:]] == [{"ok": True}] * 2
    finally:
        queue.close()
