import subprocess

from fastexit_bench.provenance import source_dirty


def _git(repo, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True, capture_output=True
    )


def test_source_dirty_ignores_regenerated_results_but_not_code(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "pkg" / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "table.md").write_text("| a |\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "init")
    assert source_dirty(tmp_path / "pkg") is False

    (tmp_path / "results" / "table.md").write_text("| b |\n")
    (tmp_path / "results" / "new.md").write_text("untracked\n")
    assert source_dirty(tmp_path / "pkg") is False

    (tmp_path / "pkg" / "code.py").write_text("x = 2\n")
    assert source_dirty(tmp_path / "pkg") is True


def test_source_dirty_is_unknown_outside_git(tmp_path):
    assert source_dirty(tmp_path) is None


def test_a_record_carries_its_commands_wall_time():
    """A command writes its records at its end, so its provenance block's process age is its wall time."""
    import subprocess
    import sys

    code = "import time; time.sleep(1.0); from fastexit_bench.provenance import collect; print(collect().wall_seconds)"
    seconds = float(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    assert 1.0 <= seconds < 30
