"""Where things live on disk: the resources folder, the data mirror, installed packages' folders."""

from __future__ import annotations

import importlib.util
import os
import socket
from dataclasses import dataclass
from functools import cache
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


@dataclass(frozen=True)
class ResolvedBackbone:
    """Where a backbone will be loaded from, and what that copy is (recorded with every model and artefact).

    Attributes:
        requested: the name or path asked for; location: the folder or hub id loaded; source: what that copy
        is; has_pooler: whether the checkpoint has a pooler (None: not yet loaded); pooling: how the backbone
        was pretrained to pool a sentence.
    """

    requested: str
    location: str
    source: str
    has_pooler: bool | None = None
    pooling: str = "cls"


def resources_dir(path: str | Path | None = None) -> Path:
    """Where converted backbones and caches live: the argument, ``$FASTEXIT_RESOURCES`` or ``resources/``."""
    return Path(path or os.environ.get(RESOURCES_ENV) or "resources")


HUB_HOST = "huggingface.co"
OFFLINE_VALUES = ("1", "true", "yes", "on")


@cache
def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the HuggingFace hub can be reached from here (False in offline mode, ``HF_HUB_OFFLINE=1``)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in OFFLINE_VALUES:
        return False
    try:
        socket.create_connection((HUB_HOST, 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def package_dir(package: str) -> Path | None:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))
