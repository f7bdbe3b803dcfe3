"""Layout detection (CelebA, FFHQ, plain folders) and the deterministic file listing."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfake_lab.data.layouts import detect_layout, list_images, read_celeba_partition
from deepfake_lab.errors import UserError


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")


def test_celeba_layout_reads_the_partition(tmp_path: Path) -> None:
    for i in range(1, 5):
        _touch(tmp_path / "img_align_celeba" / f"{i:06d}.jpg")
    (tmp_path / "list_eval_partition.txt").write_text(
        "000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n\n"
    )
    layout = detect_layout(tmp_path)
    assert layout.name == "celeba"
    images, _ = list_images(layout)
    assert [(i.rel, i.split) for i in images] == [
        ("img_align_celeba/000001.jpg", "train"),
        ("img_align_celeba/000002.jpg", "val"),
        ("img_align_celeba/000003.jpg", "test"),
        ("img_align_celeba/000004.jpg", None),  # not listed: no split, still an image
    ]


def test_celeba_kaggle_copy_nested_folder_and_csv(tmp_path: Path) -> None:
    _touch(tmp_path / "img_align_celeba" / "img_align_celeba" / "000001.jpg")
    (tmp_path / "list_eval_partition.csv").write_text("image_id,partition\n000001.jpg,2\n")
    layout = detect_layout(tmp_path)
    assert layout.name == "celeba"
    assert layout.image_root == tmp_path.resolve() / "img_align_celeba" / "img_align_celeba"
    assert [i.split for i in list_images(layout)[0]] == ["test"]


def test_malformed_partition_file_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "list_eval_partition.txt"
    bad.write_text("000001.jpg 0\n000002.jpg seven\n")
    with pytest.raises(UserError, match=r"list_eval_partition.txt:2"):
        read_celeba_partition(bad)


def test_unreadable_partition_file_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "img_align_celeba").mkdir()
    (tmp_path / "list_eval_partition.txt").write_bytes(b"\xff\xfe\x00 binary, not text\n")
    with pytest.raises(UserError, match=r"cannot read the CelebA partition file .*utf-8"):
        detect_layout(tmp_path)


def test_ffhq_layouts(tmp_path: Path) -> None:
    ffhq = tmp_path / "ffhq"
    _touch(ffhq / "images1024x1024" / "00000" / "00000.png")
    _touch(ffhq / "in-the-wild-images" / "00000.png")  # must not be mixed in
    layout = detect_layout(ffhq)
    assert layout.name == "ffhq"
    assert [i.rel for i in list_images(layout)[0]] == ["images1024x1024/00000/00000.png"]

    numbered = tmp_path / "numbered"
    _touch(numbered / "00000" / "00001.png")
    _touch(numbered / "01000" / "01000.png")
    assert detect_layout(numbered).name == "ffhq"


def test_plain_folder_is_sorted_recursive_and_skips_hidden_and_output(tmp_path: Path) -> None:
    for rel in ["b.PNG", "a/z.jpg", "a/b.webp", "c.bmp", ".hidden.jpg", ".cache/x.jpg"]:
        _touch(tmp_path / rel)
    _touch(tmp_path / "notes.txt")
    _touch(tmp_path / "out" / "images" / "ab" / "abcd.png")
    layout = detect_layout(tmp_path)
    assert layout.name == "folder"
    images, ignored = list_images(layout, exclude=tmp_path / "out")
    assert [i.rel for i in images] == ["a/b.webp", "a/z.jpg", "b.PNG", "c.bmp"]
    assert ignored == 1


def test_missing_or_file_source_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        detect_layout(tmp_path / "nope")
    _touch(tmp_path / "one.jpg")
    with pytest.raises(UserError, match="not a folder"):
        detect_layout(tmp_path / "one.jpg")
