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
