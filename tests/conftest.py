"""Shared fixtures: offline hub settings, the shared data mirror, a session resources folder."""

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.pop("FASTEXIT_DATA_MIRROR", None)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def mirror() -> Path:
    """``../shared/data`` next to the checkout; tests that need it are skipped without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data mirror not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def resources(tmp_path_factory) -> Path:
    """One resources folder per test session, so converted backbones are built once."""
    return tmp_path_factory.mktemp("resources")
