import pytest

from deepfake_lab.io import append_jsonl, atomic_write, atomic_write_text, read_jsonl


def test_atomic_write_keeps_old_file_on_crash(tmp_path):
    p = tmp_path / "f.txt"
    atomic_write_text(p, "old")

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        atomic_write(p, boom)
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["f.txt"]  # no temp file left


def test_jsonl_skips_torn_line(tmp_path):
    p = tmp_path / "m.jsonl"
    append_jsonl(p, {"a": 1})
    with open(p, "a") as fh:
        fh.write('{"a": 2')  # torn by a crash
    assert read_jsonl(p) == [{"a": 1}]


def test_atomic_files_and_export_folders_get_the_umask_permissions(tmp_path):
    """mkstemp/mkdtemp are owner-only; what lands under its final name must not be."""
    import os
    import stat

    from deepfake_lab.models.export_format import write_export

    old = os.umask(0o027)
    try:
        import importlib

        import deepfake_lab.io as dio

        importlib.reload(dio)  # it reads the umask at import
        dio.atomic_write_text(tmp_path / "a.txt", "x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    finally:
        os.umask(old)
        importlib.reload(dio)
    atomic_write_text(tmp_path / "b.txt", "x")
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o666 & ~old
    out = write_export(tmp_path / "exp", {}, {"format": "test"})
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~old
    assert stat.S_IMODE((out / "config.json").stat().st_mode) == 0o666 & ~old


def test_a_folder_in_the_way_is_named_in_the_error_not_the_temp_file(tmp_path):
    (tmp_path / "out.png").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        atomic_write_text(tmp_path / "out.png", "x")
    assert info.value.filename == str(tmp_path / "out.png")
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temp file left behind


def test_check_output_paths_refuses_folders_for_files_and_files_for_folders(tmp_path):
    from deepfake_lab.errors import UserError
    from deepfake_lab.io import check_output_paths

    (tmp_path / "file.txt").write_text("x")
    check_output_paths(
        {"--json": tmp_path / "new" / "out.json", "--csv": None},
        {"--report": tmp_path / "new" / "report", "--timeline": tmp_path},
    )
    with pytest.raises(UserError, match=r"^--json .* is a folder; give a file name"):
        check_output_paths({"--json": tmp_path})
    with pytest.raises(UserError, match=r"^--json .*file\.txt is a file, not a folder"):
        check_output_paths({"--json": tmp_path / "file.txt" / "out.json"})
    with pytest.raises(UserError, match=r"^--report .*file\.txt is a file, not a folder"):
        check_output_paths(folders={"--report": tmp_path / "file.txt"})
    assert not (tmp_path / "new").exists()  # checking creates nothing
