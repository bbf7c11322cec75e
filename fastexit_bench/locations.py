"""Where things live on disk: the resources folder, the data mirror, installed packages' folders."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

RESOURCES_ENV = "FASTEXIT_RESOURCES"
MIRROR_ENV = "FASTEXIT_DATA_MIRROR"
DATASETS_ENV = "FASTEXIT_DATASETS"


def resources_dir(path: str | Path | None = None) -> Path:
    """Where converted backbones and caches live: the argument, ``$FASTEXIT_RESOURCES`` or ``resources/``."""
    return Path(path or os.environ.get(RESOURCES_ENV) or "resources")


def package_dir(package: str) -> Path | None:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))
