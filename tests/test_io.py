"""Atomic writers never delete what they did not create; output checks refuse before any work."""

import os
import subprocess
import sys

import pytest

from fastexit_bench.errors import OutputError
from fastexit_bench.io import (
    HOST,
    atomic_path,
    cache_entry,
    check_output_file,
    check_output_folder,
    exclusive_use,
    write_json,
)


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


def test_files_get_the_users_normal_permissions(tmp_path):
    """safetensors writes 0600 and mkdtemp makes 0700 folders; the finished outputs follow the umask."""
    import torch
    from safetensors.torch import save_file

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "model.safetensors") as tmp:
            save_file({"w": torch.zeros(2)}, str(tmp))
        with cache_entry(tmp_path / "cached") as tmp:
            tmp.mkdir()
    finally:
        os.umask(umask)
    assert (tmp_path / "model.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "cached").stat().st_mode & 0o777 == 0o755


def test_a_killed_writers_temporary_folder_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    litter = tmp_path / f".out.json.tmp-{HOST}-{dead.pid}-abc"
    live = tmp_path / f".out.json.tmp-{HOST}-{os.getpid()}-def"  # a writer still at work
    other_host = tmp_path / f".out.json.tmp-elsewhere-{dead.pid}-ghi"
    for folder in (litter, live, other_host):
        folder.mkdir()
    write_json(tmp_path / "out.json", {"a": 1})
    assert not litter.exists() and live.exists() and other_host.exists()


def test_a_second_writer_is_refused_with_the_first_ones_pid(tmp_path):
    model = tmp_path / "runs" / "model"
    script = (
        "import pathlib, time; from fastexit_bench.io import exclusive_use\n"
        f"with exclusive_use(pathlib.Path({str(model)!r}), 'test'):\n"
        "    print('held', flush=True); time.sleep(30)"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(OutputError, match=f"is in use by PID {holder.pid} \\(another train\\)"),
            exclusive_use(model, "train"),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    with exclusive_use(model, "train"):  # a killed holder's lock is free at once
        assert (tmp_path / "runs" / ".model.lock").read_text().strip() == str(os.getpid())
    assert list((tmp_path / "runs").iterdir()) == []  # the lock file goes with its last holder
    with exclusive_use(tmp_path / "new" / "model", "train"):
        pass
    assert not (tmp_path / "new").exists()  # made for the lock and left empty: removed


def test_output_checks_create_nothing(tmp_path):
    check_output_file(tmp_path / "a" / "b" / "out.json")
    check_output_folder(tmp_path / "c" / "model")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot write to .* is a file"):
        check_output_file(tmp_path / "file" / "sub" / "out.json")
