"""The workflow config schema agrees with the registries and rejects typos."""

from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from fastexit_bench.data.spec import DATASETS

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def _config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_dataset_enum_equals_the_registry():
    schema = yaml.safe_load(SCHEMA.read_text())
    assert schema["properties"]["prepare"]["items"]["properties"]["dataset"]["enum"] == DATASETS.names()


def test_default_config_is_valid():
    validate(_config(), str(SCHEMA))


@pytest.mark.parametrize(
    "change",
    [
        {"max_lenght": 64},  # typo in a key
        {"prepare": [{"dataset": "sst-2", "backbone": "minilm-l6"}]},  # unknown dataset
        {"max_length": 4},
    ],
)
def test_bad_config_fails(change):
    with pytest.raises(WorkflowError):
        validate(_config() | change, str(SCHEMA))
