"""Transient failures in ``data prepare``: out of memory, unreadable. Counted and listed like
every rejection, never reused as a verdict on the file by a later run."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from deepfake_lab.data import decode as decode_mod
from deepfake_lab.data import manifest as mf
from deepfake_lab.data import prepare as prepare_mod
from deepfake_lab.data import prepare_run
from deepfake_lab.data import prepare_video as pv
from deepfake_lab.data.decode import TRANSIENT_REASONS, DecodeError, decode_bytes
from deepfake_lab.data.prepare import prepare_dataset
from deepfake_lab.errors import UserError

SIZE = 32


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _run(src: Path, out: Path, **kw):
    return prepare_dataset(src, out, size=SIZE, align=False, frames_per_video=2, **kw)


def _photos(src: Path, n: int = 3) -> list[Path]:
    src.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = src / f"p{i}.png"
        Image.fromarray(np.full((40, 40, 3), 30 + 50 * i, np.uint8)).save(path)
        paths.append(path)
    return paths


def _fail_once(monkeypatch, module, name: str, exc: BaseException) -> list[int]:
    """Replace ``module.name`` by a wrapper that raises ``exc`` on its first call; returns
    the list the raises are counted in."""
    real = getattr(module, name)
    raised: list[int] = []

    def wrapper(*args, **kwargs):
        if not raised:
            raised.append(1)
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return raised


def test_memory_error_in_the_decoder_is_out_of_memory_not_corrupt(monkeypatch) -> None:
    def no_memory(*_args, **_kwargs):
        raise MemoryError

    monkeypatch.setattr(decode_mod.Image, "open", no_memory)
    with pytest.raises(DecodeError) as info:
        decode_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    assert info.value.reason == "out_of_memory" and info.value.transient
    assert not DecodeError("corrupt", "x").transient
    assert TRANSIENT_REASONS == {"unreadable", "out_of_memory"}


def test_an_image_out_of_memory_once_is_kept_by_the_next_run(tmp_path: Path, monkeypatch) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    _photos(src)
    raised = _fail_once(monkeypatch, prepare_mod, "decode_bytes", MemoryError())
    first = _run(src, out)
    assert raised and first.kept == 2 and first.rejected == {"out_of_memory": 1}
    (record,) = _jsonl(out / mf.REJECTED)
    assert record["reason"] == "out_of_memory" and record["transient"] is True
    assert Path(record["source"]).name == "p0.png"

    monkeypatch.undo()
    second = _run(src, out)
    assert second.kept == 1 and second.skipped_done == 2 and second.rejected == {}
    assert second.total_kept == 3
    assert not (out / mf.REJECTED).read_text().strip()  # the old record is gone


def test_out_of_memory_in_face_detection_is_transient_too(tmp_path: Path, monkeypatch) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    _photos(src, 2)
    _fail_once(monkeypatch, prepare_mod, "center_crop", MemoryError())
    first = _run(src, out)
    assert first.kept == 1 and first.rejected == {"out_of_memory": 1}
    monkeypatch.undo()
    second = _run(src, out)
    assert second.kept == 1 and second.rejected == {}


@pytest.mark.parametrize(
    "detail, reused",
    [("the image data does not decode (MemoryError)", False), ("bad Huffman code", True)],
)
def test_an_old_corrupt_record_that_was_a_memory_error_is_retried(
    tmp_path: Path, detail: str, reused: bool
) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    (photo,) = _photos(src, 1)
    (src / "bad.png").write_text("not an image")
    _run(src, out)
    (bad,) = _jsonl(out / mf.REJECTED)
    # What versions before transient failures wrote for a MemoryError: "corrupt", the
    # exception's name in the detail.
    size, mtime = mf.stat_key(photo)
    old = bad | {"source": str(photo), "reason": "corrupt", "detail": detail}
    old |= {"sha256": None, "source_bytes": size, "source_mtime_ns": mtime}
    (out / mf.REJECTED).write_text(json.dumps(bad) + "\n" + json.dumps(old) + "\n")
    (out / mf.MANIFEST).unlink()

    if reused:  # a verdict on the bytes: the unchanged file is settled without reading it
        with pytest.raises(UserError, match=r"\(corrupt: 1, not_image: 1\)"):
            _run(src, out)
    else:
        summary = _run(src, out)
        assert summary.rejected == {"not_image": 1} and summary.kept == 1


def test_transient_or_unknown_records_are_never_reused() -> None:
    assert mf.reusable({"reason": "corrupt", "detail": "bad Huffman code"})
    assert not mf.reusable({"reason": "corrupt", "detail": "x", "transient": True})
    assert not mf.reusable({"reason": "unreadable", "detail": "permission denied"})
    assert not mf.reusable({"reason": "out_of_memory", "detail": "x"})
    assert not mf.reusable({"detail": "no reason at all"})


def test_an_unreadable_file_is_retried_by_the_next_run(tmp_path: Path, monkeypatch) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    _photos(src, 2)
    # Permission denied (chmod 0 would not stop a test run as root): a permission can
    # change back without the file's size or mtime changing, so only a retry can tell.
    denied = DecodeError("unreadable", "cannot read the file: Permission denied")
    _fail_once(monkeypatch, prepare_run, "read_image_file", denied)
    first = _run(src, out)
    assert first.kept == 1 and first.rejected == {"unreadable": 1}
    (record,) = _jsonl(out / mf.REJECTED)
    assert record["reason"] == "unreadable" and record["transient"] is True

    monkeypatch.undo()
    second = _run(src, out)
    assert second.kept == 1 and second.rejected == {}


def _video(path: Path, n: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for i in range(n):
            image = np.full((32, 48, 3), 20 * i, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("where", ["open", "second frame"])
def test_a_video_out_of_memory_is_rejected_whole_and_retried(
    tmp_path: Path, monkeypatch, where: str
) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    _video(src / "clip.mp4")
    real = pv.iter_evenly_spaced
    if where == "open":
        _fail_once(monkeypatch, pv, "iter_evenly_spaced", MemoryError())
    else:

        def frames_then_oom(path, k):
            frames = real(path, k)
            yield next(frames)
            raise MemoryError  # after one good frame: nothing of the video may be kept

        monkeypatch.setattr(pv, "iter_evenly_spaced", frames_then_oom)
    with pytest.raises(UserError, match=r"all 1 files were rejected \(out_of_memory: 1\)"):
        _run(src, out)
    (record,) = _jsonl(out / mf.REJECTED)
    assert record["reason"] == "out_of_memory" and record["transient"] is True
    assert not (out / mf.MANIFEST).exists() or not _jsonl(out / mf.MANIFEST)

    monkeypatch.undo()
    again = _run(src, out)
    assert again.videos_kept == 1 and again.rejected == {}
