"""What produced a result file: code version, environment, hardware, arguments and inputs."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from fastexit_bench import __version__

SCHEMA_VERSION = 1
LIBRARIES = ("torch", "transformers", "tokenizers", "datasets", "fvcore", "pandas", "numpy", "snakemake")


PACKAGE_DIR = Path(__file__).resolve().parent


def _git(*args: str, cwd: Path = PACKAGE_DIR) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=cwd)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Python and library versions, CPU/GPU and thread count."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "cpu": _cpu_model(),
        **{lib: _version(lib) for lib in LIBRARIES},
    }
    if "torch" in sys.modules:
        import torch

        env["torch_threads"] = torch.get_num_threads()
        env["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
        env["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return env


def source_dirty(cwd: Path = PACKAGE_DIR) -> bool | None:
    """Whether tracked code or config differs from HEAD (None outside git). results/ does not count:
    regenerating the committed reference results rewrites tracked files there by design."""
    status = _git(
        "status", "--porcelain", "--untracked-files=no", "--", ":/", ":(top,exclude)results", cwd=cwd
    )
    return None if status is None else bool(status)


@dataclass
class Provenance:
    """The provenance block every result file carries. Attributes: the code (``package_version``,
    ``git_commit``, ``git_dirty``: tracked code differing from it), when and how it ran (``created_utc``,
    ``argv``), the run's settings (``config``, free-form, and their hash), the files it read with their
    SHA-256 (``inputs``), ``env`` (:func:`environment`) and ``wall_seconds``, how long the command's process
    had run when it wrote the block (its wall time, for a command that writes at its end). Every field is
    optional: blocks written before a field existed read with it empty."""

    schema_version: int | None = None
    package_version: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    created_utc: str | None = None
    argv: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    config_sha256: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect(config: dict[str, Any] | None = None, inputs: dict[str, str] | None = None) -> Provenance:
    """This run's provenance block."""
    return Provenance(
        schema_version=SCHEMA_VERSION,
        package_version=__version__,
        git_commit=_git("rev-parse", "HEAD"),
        git_dirty=source_dirty(),
        created_utc=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        argv=list(sys.argv),
        config=config or {},
        config_sha256=hashlib.sha256(
            json.dumps(config or {}, sort_keys=True, default=str).encode()
        ).hexdigest(),
        inputs=inputs or {},
        env=environment(),
        wall_seconds=process_age_s(),
    )


def process_age_s() -> float | None:
    """Seconds since this process started (Linux ``/proc``; None elsewhere)."""
    try:
        started_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return round(uptime - started_ticks / os.sysconf("SC_CLK_TCK"), 1)
