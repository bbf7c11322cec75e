"""Atomic writers never delete what they did not create; output checks refuse before any work."""

import os

import pytest

from fastexit_bench.errors import OutputError
from fastexit_bench.io import atomic_path, check_output_file, check_output_folder, write_json


def test_atomic_write_refuses_a_folder_in_its_place(tmp_path):
    (tmp_path / "out.json").mkdir()
    (tmp_path / "out.json" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="is a folder"):
        write_json(tmp_path / "out.json", {"a": 1})
    assert (tmp_path / "out.json" / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary folder left behind


def test_atomic_write_replaces_a_file_whole(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_output_checks(tmp_path):
    source = tmp_path / "in.npz"
    source.write_text("data")
    with pytest.raises(OutputError, match="is also an input"):
        check_output_file(source, inputs=[source])
    assert check_output_file(tmp_path / "new" / "out.npz", inputs=[source]) == tmp_path / "new" / "out.npz"
    with pytest.raises(OutputError, match="is a file"):
        check_output_folder(source)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_folder_is_refused_before_any_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(OutputError, match="cannot write to"):
        check_output_file(locked / "out.json")
