"""Every command in the README's shell blocks runs as written: `fastexit-bench` commands parse, and the fast
ones run; `snakemake` commands dry-run (`-n`) from the repository root. Set-up lines (pip) are the CI's own
command, lines with placeholders (<partition>) and files the reader writes first (my.yaml) are listed and
left out."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fastexit_bench.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
FAST = {"plan", "data"}
"""`fastexit-bench` commands quick enough to run for real here (the others parse only)."""


def readme_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands += [part.strip() for part in line.split("&&")]
    return commands


def left_out(command: str) -> str | None:
    """Why a README command is not run here, or None."""
    words = shlex.split(command)
    if words[0] not in ("snakemake", "fastexit-bench"):
        return "set-up (the CI runs it)"
    if "<" in command:
        return "placeholders"
    missing = [w for w in words if w.endswith((".yaml", ".yml")) and not (ROOT / w).exists()]
    return f"a file the reader writes first ({missing[0]})" if missing else None


COMMANDS = readme_commands()


def test_the_readme_has_commands_and_runs_most_of_them():
    assert any(c.startswith("snakemake") for c in COMMANDS) and any(
        c.startswith("fastexit-bench") for c in COMMANDS
    )
    assert sum(left_out(c) is None for c in COMMANDS) >= 4, [(c, left_out(c)) for c in COMMANDS]


@pytest.mark.parametrize("command", [c for c in COMMANDS if left_out(c) is None])
def test_a_readme_command_runs_as_written(command, mirror, capsys):
    words = shlex.split(command)
    if words[0] == "fastexit-bench":
        args = build_parser().parse_args(words[1:])  # exits 2 on an unknown option or value
        if args.command in FAST:
            assert main(words[1:]) == 0, capsys.readouterr().err
        return
    dry = [words[0], *words[1:], "-n"] if "-n" not in words else words
    done = subprocess.run(
        [sys.executable, "-m", *dry], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0 and "Traceback" not in said, said[-3000:]
    if "data_mirror=" in command:  # the README gives the mirror: every dataset must be found there
        assert "cannot run here: dataset" not in said, said[-3000:]
