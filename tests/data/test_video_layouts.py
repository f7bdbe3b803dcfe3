"""FaceForensics++ and VoxCeleb layouts: recognition, labels from the path, what is passed
over. The files are tiny stand-ins: layouts look at names, never at contents."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfake_lab.data.layouts import detect_layout, list_images, list_sources
from deepfake_lab.data.video_layouts import SourceLabels, ffpp_labels, voxceleb_labels


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def _ffpp_tree(root: Path) -> Path:
    for rel in (
        "original_sequences/youtube/c23/videos/000.mp4",
        "original_sequences/youtube/c40/videos/001.mp4",
        "original_sequences/actors/raw/videos/01__walking.mp4",
        "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4",
        "manipulated_sequences/NeuralTextures/c0/videos/001_870.mp4",
        "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__walking__YVGY8LOK.mp4",
        # extracted frames, as the FaceForensics++ scripts write them
        "manipulated_sequences/Face2Face/c23/images/000_003/0000.png",
        # not faces of the dataset: masks, a stray download, a readme
        "manipulated_sequences/Deepfakes/masks/videos/000_003.mp4",
        "downloaded_videos/abc/abc.mp4",
        "README.txt",
    ):
        _touch(root / rel)
    return root


def test_faceforensics_layout_labels_every_video_from_its_path(tmp_path: Path) -> None:
    root = _ffpp_tree(tmp_path / "ffpp")
    layout = detect_layout(root)
    assert layout.name == "faceforensics"
    images, videos, ignored = list_sources(layout)
    assert ignored == 3  # the mask video, the download, the readme
    got = {v.rel: v.labels for v in videos}
    assert got == {
        "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__walking__YVGY8LOK.mp4":
            SourceLabels("fake", "DeepFakeDetection", "c23"),
        "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4":
            SourceLabels("fake", "Deepfakes", "c23"),
        "manipulated_sequences/NeuralTextures/c0/videos/001_870.mp4":
            SourceLabels("fake", "NeuralTextures", "c0"),
        "original_sequences/actors/raw/videos/01__walking.mp4": SourceLabels("real", None, "raw"),
        "original_sequences/youtube/c23/videos/000.mp4": SourceLabels("real", None, "c23"),
        "original_sequences/youtube/c40/videos/001.mp4": SourceLabels("real", None, "c40"),
    }  # fmt: skip
    assert [(i.rel, i.labels) for i in images] == [
        (
            "manipulated_sequences/Face2Face/c23/images/000_003/0000.png",
            SourceLabels("fake", "Face2Face", "c23"),
        )
    ]
    assert all(v.split is None and v.labels.speaker is None for v in videos)


def test_a_folder_inside_faceforensics_keeps_its_labels(tmp_path: Path) -> None:
    root = _ffpp_tree(tmp_path / "ffpp")
    layout = detect_layout(root / "manipulated_sequences" / "Deepfakes")
    assert layout.name == "faceforensics"
    _, videos, ignored = list_sources(layout)
    assert [(v.rel, v.labels) for v in videos] == [
        ("c23/videos/000_003.mp4", SourceLabels("fake", "Deepfakes", "c23"))
    ]
    assert ignored == 1  # masks/videos/000_003.mp4


def test_ffpp_labels_rejects_paths_off_the_layout() -> None:
    assert ffpp_labels(("original_sequences", "youtube", "c23", "videos", "0.mp4")) is not None
    for parts in (
        ("original_sequences", "youtube", "c23", "0.mp4"),  # too shallow
        ("original_sequences", "youtube", "high", "videos", "0.mp4"),  # not a compression
        ("manipulated_sequences", "Deepfakes", "masks", "videos", "0.mp4"),
        ("manipulated_sequences", "Deepfakes", "c23", "bboxes", "0.json"),
        ("other_sequences", "x", "c23", "videos", "0.mp4"),
    ):
        assert ffpp_labels(parts) is None, parts


def test_voxceleb2_dev_and_test_folders(tmp_path: Path) -> None:
    root = tmp_path / "vox2"
    _touch(root / "dev" / "mp4" / "id00012" / "21Uxsk56VDQ" / "00001.mp4")
    _touch(root / "dev" / "mp4" / "id00012" / "21Uxsk56VDQ" / "00002.mp4")
    _touch(root / "dev" / "mp4" / "id00015" / "0fijmz4vTVU" / "00001.mp4")
    _touch(root / "test" / "mp4" / "id00017" / "01dfn2spqyE" / "00001.mp4")
    _touch(root / "dev" / "mp4" / "id00012" / "stray.mp4")  # not at utterance depth
    _touch(root / "vox2_meta.csv")
    layout = detect_layout(root)
    assert layout.name == "voxceleb"
    images, videos, ignored = list_sources(layout)
    assert images == [] and ignored == 2
    got = [(v.rel, v.split, v.labels.speaker, v.labels.youtube_id) for v in videos]
    assert got == [
        ("dev/mp4/id00012/21Uxsk56VDQ/00001.mp4", "train", "id00012", "21Uxsk56VDQ"),
        ("dev/mp4/id00012/21Uxsk56VDQ/00002.mp4", "train", "id00012", "21Uxsk56VDQ"),
        ("dev/mp4/id00015/0fijmz4vTVU/00001.mp4", "train", "id00015", "0fijmz4vTVU"),
        ("test/mp4/id00017/01dfn2spqyE/00001.mp4", "test", "id00017", "01dfn2spqyE"),
    ]
    assert {v.labels.label for v in videos} == {"real"}
    assert {(v.labels.method, v.labels.compression) for v in videos} == {(None, None)}


@pytest.mark.parametrize("below", ["", "mp4", "dev"])
def test_voxceleb1_video_layout(tmp_path: Path, below: str) -> None:
    root = tmp_path / "vox1"
    speakers = root / below if below else root
    _touch(speakers / "id10001" / "1zcIwhmdeo4" / "00001.mp4")
    _touch(speakers / "id10002" / "6WxS8rpNjmk" / "00003.mp4")
    layout = detect_layout(root)
    assert layout.name == "voxceleb"
    _, videos, _ = list_sources(layout)
    assert [(v.labels.speaker, v.labels.youtube_id) for v in videos] == [
        ("id10001", "1zcIwhmdeo4"),
        ("id10002", "6WxS8rpNjmk"),
    ]
    assert {v.split for v in videos} == {"train" if below == "dev" else None}


def test_one_voxceleb_speaker_folder(tmp_path: Path) -> None:
    speaker = tmp_path / "id10001"
    _touch(speaker / "1zcIwhmdeo4" / "00001.mp4")
    layout = detect_layout(speaker)
    assert layout.name == "voxceleb"
    _, videos, _ = list_sources(layout)
    assert [v.rel for v in videos] == ["1zcIwhmdeo4/00001.mp4"]
    assert videos[0].labels.speaker == "id10001"


def test_voxceleb_split_only_from_the_folder_right_above_the_speaker(tmp_path: Path) -> None:
    far = tmp_path / "test" / "data" / "id10001" / "abc" / "00001.mp4"
    assert voxceleb_labels(far) == (None, SourceLabels("real", speaker="id10001", youtube_id="abc"))
    assert voxceleb_labels(tmp_path / "id10001" / "00001.mp4") is None


def test_id_folders_without_videos_are_a_plain_folder(tmp_path: Path) -> None:
    _touch(tmp_path / "id123" / "photos" / "a.jpg")
    layout = detect_layout(tmp_path)
    assert layout.name == "folder"


def test_plain_folder_lists_videos_unlabelled_and_list_images_still_skips_them(
    tmp_path: Path,
) -> None:
    _touch(tmp_path / "a.jpg")
    _touch(tmp_path / "clips" / "b.MP4")
    _touch(tmp_path / "clips" / "c.mpg")
    _touch(tmp_path / "notes.txt")
    layout = detect_layout(tmp_path)
    assert layout.name == "folder"
    images, videos, ignored = list_sources(layout)
    assert [i.rel for i in images] == ["a.jpg"]
    assert [v.rel for v in videos] == ["clips/b.MP4", "clips/c.mpg"]
    assert ignored == 1
    assert {v.labels for v in videos} == {SourceLabels()}
    # list_images (used by training datasets) is unchanged: videos count as passed over.
    images_only, ignored_there = list_images(layout)
    assert [i.rel for i in images_only] == ["a.jpg"] and ignored_there == 3
