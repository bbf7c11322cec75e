"""The workflow config schema: its defaults equal the package's typed configs, it accepts plug-ins by import
path, and it rejects typos."""

import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from fastexit_bench.analysis.operating_points import OperatingPointSpec
from fastexit_bench.data.config import DataConfig
from fastexit_bench.execution import ATTENTIONS, PRECISIONS, ExecutionConfig
from fastexit_bench.pooling import DEFAULT_POOLING, POOLING_CHOICES
from fastexit_bench.registry import IMPORT_PATH
from fastexit_bench.reporting.paper import LAYOUTS, TableSpec
from fastexit_bench.runtime.config import LatencyConfig
from fastexit_bench.training.config import (
    ADAMW_IMPLEMENTATIONS,
    FROZEN_MODES,
    KEEPS,
    VOCABULARIES,
    TrainConfig,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def _config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def test_defaults_equal_the_typed_configs():
    top = _schema()["properties"]
    experiment = top["experiments"]["additionalProperties"]["properties"]
    data = {f.name: f.default for f in fields(DataConfig)}
    for key, value in data.items():
        assert top[key]["default"] == value, key
        if key != "seed":  # an experiment trains one model per entry of its `seeds` list
            assert experiment[key]["default"] == value, key
    train = TrainConfig()
    for key in ("epochs", "lr", "batch_size", "warmup", "weight_decay", "keep", "frozen", "vocabulary", "adamw"):
        assert experiment[key]["default"] == getattr(train, key), key
    assert experiment["keep"]["enum"] == list(KEEPS) and experiment["frozen"]["enum"] == list(FROZEN_MODES)
    assert experiment["vocabulary"]["enum"] == list(VOCABULARIES)
    assert experiment["adamw"]["enum"] == list(ADAMW_IMPLEMENTATIONS)
    assert experiment["latency_examples"]["default"] == LatencyConfig().examples
    assert experiment["pooling"]["default"] == DEFAULT_POOLING
    assert sorted(experiment["pooling"]["enum"]) == sorted(POOLING_CHOICES)
    execution = ExecutionConfig()
    assert experiment["precision"]["default"] == execution.precision and experiment["precision"]["enum"] == list(
        PRECISIONS)
    assert experiment["attention"]["default"] == execution.attention and experiment["attention"]["enum"] == list(
        ATTENTIONS)
    table = experiment["table"]["properties"]
    assert table["max_drop"]["default"] == list(OperatingPointSpec().max_drop)
    assert table["layout"]["default"] == TableSpec().layout
    assert table["reference"]["default"] == TableSpec().reference
    assert table["layout"]["enum"] == list(LAYOUTS)


def test_policy_pattern_takes_names_and_import_paths_of_any_case():
    pattern = re.compile(_schema()["properties"]["experiments"]["additionalProperties"]["properties"]["policies"]
                         ["items"]["pattern"])
    for good in ("entropy", "max_prob", "my_pkg.policies:Margin", "pkg:CamelCase2", "a.b.c:x"):
        assert pattern.match(good), good
    for bad in ("Entropy", "my_pkg.policies:", ":Margin", "a b:C", "pkg.:X"):
        assert not pattern.match(bad), bad
    assert pattern.pattern.endswith("|" + IMPORT_PATH.pattern.lstrip("^").rstrip("$") + ")$")


def test_default_config_is_valid():
    validate(_config(), str(SCHEMA))


@pytest.mark.parametrize(
    "change",
    [
        {"max_lenght": 64},  # typo in a key
        {"prepare": [{"dataset": "SST 2", "backbone": "minilm-l6"}]},  # not a dataset name at all
        {"max_length": 4},
    ],
)
def test_bad_config_fails(change):
    with pytest.raises(WorkflowError):
        validate(_config() | change, str(SCHEMA))
