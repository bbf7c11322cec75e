"""Where things live on disk: the resources folder, the data mirror, installed packages' folders."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

RESOURCES_ENV = "FASTEXIT_RESOURCES"
MIRROR_ENV = "FASTEXIT_DATA_MIRROR"
DATASETS_ENV = "FASTEXIT_DATASETS"


@dataclass(frozen=True)
class Locations:
    """Where a command reads from and runs: the dataset mirror, the resources folder and the device name
    (``--mirror``, ``--resources``, ``--device``; None: the environment's or the defaults)."""

    mirror: str | Path | None = None
    resources: str | Path | None = None
    device: str = "auto"


def resources_dir(path: str | Path | None = None) -> Path:
    """Where converted backbones and caches live: the argument, ``$FASTEXIT_RESOURCES`` or ``resources/``."""
    return Path(path or os.environ.get(RESOURCES_ENV) or "resources")


def package_dir(package: str) -> Path | None:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))
