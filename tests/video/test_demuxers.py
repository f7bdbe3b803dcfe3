"""Only video containers are opened: FFmpeg's scripts, playlists and stills are refused,
whatever the file is called (an ffconcat script named ``.mp4`` would decode another file)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from deepfake_lab.video import container as opening
from deepfake_lab.video.decode import (
    VideoDecodeError,
    iter_evenly_spaced,
    iter_frames,
    probe,
    read_audio,
)


def write_clip(path: Path, fmt: str | None = None, codec: str = "mpeg4", frames: int = 6) -> Path:
    """A tiny clip whose frames are flat grays 0, 40, 80, ... (PyAV, no shared data)."""
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=Fraction(5))
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            image = np.full((32, 32, 3), 40 * i, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
    return path


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A real clip that a script beside it could name."""
    return write_clip(tmp_path / "secret.mkv", "matroska")


def test_the_clip_itself_opens(secret: Path) -> None:
    assert len(list(iter_frames(secret))) == 6


@pytest.mark.parametrize(
    "name, text",
    [
        ("x.mp4", "ffconcat version 1.0\nfile 'secret.mkv'\n"),
        ("x.mkv", "ffconcat version 1.0\nfile secret.mkv\nfile secret.mkv\n"),
        ("list.avi", "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nsecret.mkv\n#EXT-X-ENDLIST\n"),
        (
            "manifest.webm",
            '<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" '
            'type="static"><Period><AdaptationSet><Representation id="1" bandwidth="1">'
            "<BaseURL>secret.mkv</BaseURL></Representation></AdaptationSet></Period></MPD>\n",
        ),
    ],
)
def test_scripts_and_playlists_named_as_videos_are_refused(
    secret: Path, tmp_path: Path, name: str, text: str
) -> None:
    script = tmp_path / name
    script.write_text(text)
    for call in (probe, iter_frames, iter_evenly_spaced, read_audio):
        with pytest.raises(VideoDecodeError) as info:
            call(script)
        assert info.value.reason == "not_video" and "\n" not in str(info.value)
        assert str(script) in str(info.value)


def test_an_ffconcat_script_would_decode_the_clip_it_names_without_the_allow_list(
    secret: Path, tmp_path: Path
) -> None:
    # What the allow-list is for: plain av.open follows the script to another file.
    script = tmp_path / "x.mp4"
    script.write_text("ffconcat version 1.0\nfile 'secret.mkv'\n")
    with av.open(str(script)) as container:
        assert container.format.name == "concat" and container.streams.video
    with pytest.raises(VideoDecodeError, match="not a video container"):
        iter_frames(script)


def test_a_still_image_named_mp4_is_not_a_video(tmp_path: Path) -> None:
    still = tmp_path / "still.mp4"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(still, format="PNG")
    with pytest.raises(VideoDecodeError) as info:
        probe(still)
    assert info.value.reason == "not_video"


def test_a_name_that_looks_like_a_protocol_is_a_file(
    secret: Path, tmp_path: Path, monkeypatch
) -> None:
    # "concat:a|b" at the start of a path is FFmpeg's concat protocol; opened by its
    # absolute path, the file of that name is what is read.
    monkeypatch.chdir(tmp_path)
    odd = Path("concat:secret.mkv|secret.mkv")
    odd.write_bytes(secret.read_bytes())
    assert len(list(iter_frames(odd))) == 6


@pytest.mark.parametrize(
    "suffix, fmt, codec",
    [(".mp4", "mp4", "mpeg4"), (".mov", "mov", "mpeg4"), (".avi", "avi", "mpeg4"),
     (".mkv", "matroska", "mpeg4"), (".flv", "flv", "flv")],
)  # fmt: skip
def test_video_containers_still_open(tmp_path: Path, suffix: str, fmt: str, codec: str) -> None:
    path = write_clip(tmp_path / f"clip{suffix}", fmt, codec)
    frames = list(iter_frames(path))
    assert len(frames) == 6
    assert [round(float(f.image.mean()) / 40) for f in frames] == list(range(6))


def test_every_open_is_restricted_to_video_demuxers_and_local_files(
    secret: Path, monkeypatch
) -> None:
    seen: list[dict] = []
    real_open = av.open

    def spy(*args, **kwargs):
        seen.append(kwargs.get("container_options") or {})
        return real_open(*args, **kwargs)

    monkeypatch.setattr(av, "open", spy)
    list(iter_evenly_spaced(secret, 3))  # opens, counts packets, decodes
    assert len(seen) >= 3
    for options in seen:
        assert options["protocol_whitelist"] == "file"
        assert set(options["format_whitelist"].split(",")) == set(opening.VIDEO_DEMUXERS)
    for name in ("concat", "hls", "dash", "image2", "png_pipe", "tee", "lavfi", "data"):
        assert not opening.allowed_demuxer(name)
    assert opening.allowed_demuxer("mov,mp4,m4a,3gp,3g2,mj2")
    assert opening.allowed_demuxer("matroska,webm")
