"""The workflow config schema: its defaults equal the package's typed configs, it accepts plug-ins by import
path, and it rejects typos."""

import re
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from fastexit_bench.analysis.operating_points import OperatingPointSpec
from fastexit_bench.data.config import DataConfig
from fastexit_bench.errors import FastExitError
from fastexit_bench.execution import ExecutionConfig
from fastexit_bench.experiments.settings import command_options, experiment_settings
from fastexit_bench.pooling import DEFAULT_POOLING
from fastexit_bench.registry import IMPORT_PATH
from fastexit_bench.reporting.paper import TableSpec
from fastexit_bench.runtime.config import LatencyConfig
from fastexit_bench.training.config import (
    TrainConfig,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def _config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def _keys_with_defaults(schema: dict, where: str = "") -> list[str]:
    found = [where] if "default" in schema and where else []
    for key, sub in schema.get("properties", {}).items():
        found += _keys_with_defaults(sub, f"{where}.{key}" if where else key)
    if isinstance(schema.get("additionalProperties"), dict):
        found += _keys_with_defaults(schema["additionalProperties"], f"{where}.*")
    return found


def test_the_schema_carries_no_default_that_a_typed_config_owns():
    """Defaults live once, in the typed configs; the schema's are the workflow's own keys only."""
    assert sorted(_keys_with_defaults(_schema())) == sorted(
        [
            "data_mirror",
            "results",
            "resources",
            "prepare",
            "dataset_dirs",
            "threads",
            "gpu",
            "default_experiments",
            "experiments",
        ]
    )


def test_an_experiment_left_at_its_defaults_gets_the_typed_configs():
    config = {"experiments": {"e": {"datasets": ["sst2"], "backbone": "minilm-l6", "recipes": ["baseline"]}}}
    validate(config, str(SCHEMA))
    settings = experiment_settings(config, "e")
    assert settings.data == DataConfig() and settings.train == TrainConfig() and settings.seeds == (0,)
    assert settings.latency == LatencyConfig() and settings.table == TableSpec()
    assert settings.points == OperatingPointSpec() and settings.pooling == DEFAULT_POOLING
    assert settings.train.execution == ExecutionConfig() and settings.share_finetune


def test_experiment_keys_become_typed_settings_and_command_options():
    config = {
        "experiments": {
            "e": {
                "datasets": ["sst2"],
                "backbone": "minilm-l6",
                "recipes": ["baseline", "deebert"],
                "seeds": [0, 1],
                "max_eval": 100,
                "lr": 1e-4,
                "keep": "last",
                "precision": "fp32",
                "latency_examples": 8,
                "stages": {"deebert": {"offramps": {"lr": 5e-4, "epochs": 2}}},
                "table": {"values": {"speed": [0.5]}},
            }
        }
    }
    validate(config, str(SCHEMA))
    settings = experiment_settings(config, "e")
    assert settings.train.lr == 1e-4 and settings.train.keep == "last" and settings.data.max_eval == 100
    train = command_options(**settings.options("train", "deebert"))
    assert "--lr 0.0001" in train and "--keep last" in train and "--precision fp32" in train
    assert "--stage offramps:lr=0.0005,epochs=2" in train and "--max-eval 100" in train
    assert "--max-train" not in train  # None: left out, the command's own default
    assert (
        command_options(**settings.options("evaluate"))
        == "--max-eval 100 --precision fp32 --attention auto --runtime eager"
    )
    assert (
        command_options(**settings.options("latency"))
        == "--examples 8 --precision fp32 --attention auto --runtime eager"
    )
    assert command_options(**settings.options("report")) == "--layout deebert --reference baseline"
    assert settings.runs()[-1].stem == "sst2.deebert.seed1" and settings.job_counts()["train"] == 4


def test_a_recipe_can_train_on_seeds_of_its_own():
    """The reference campaign trains baselines and early-exit models on three seeds, fixed-depth rivals on one."""
    raw = {
        "datasets": ["sst2"],
        "backbone": "minilm-l6",
        "recipes": ["baseline", "fastbert", "truncated-1"],
        "seeds": [0],
        "seeds_by_recipe": {"baseline": [0, 1, 2], "fastbert": [0, 1, 2]},
        "latency_examples": 8,
    }
    validate({"experiments": {"e": raw}}, str(SCHEMA))
    settings = experiment_settings({"experiments": {"e": raw}}, "e")
    assert [run.stem for run in settings.runs() if run.recipe != "fastbert"] == [
        "sst2.baseline.seed0",
        "sst2.baseline.seed1",
        "sst2.baseline.seed2",
        "sst2.truncated-1.seed0",
    ]
    assert [run.stem for run in settings.latency_runs()] == ["sst2.fastbert.seed0"]
    assert settings.job_counts()["train"] == 7
    stray = {**raw, "seeds_by_recipe": {"deebert": [1]}}
    with pytest.raises(FastExitError, match=r"seeds_by_recipe names \['deebert'\]"):
        experiment_settings({"experiments": {"e": stray}}, "e")


def test_option_names_are_the_commands_own():
    """Every option the workflow passes is one that its command parses."""
    from fastexit_bench.cli import build_parser

    config = yaml.safe_load((ROOT / "config" / "reference.yaml").read_text())
    settings = experiment_settings({"experiments": config["experiments"]}, "sst2_minilm")
    commands = build_parser()._subparsers._group_actions[0].choices
    for command in ("train", "evaluate", "latency", "sweep", "report"):
        known = {flag for action in commands[command]._actions for flag in action.option_strings}
        used = {f"--{key.replace('_', '-')}" for key in settings.options(command, "deebert")}
        assert used <= known, (command, used - known)


def test_a_regression_dataset_is_swept_only_with_policies_that_decide_on_regression():
    config = yaml.safe_load((ROOT / "config" / "reference.yaml").read_text())
    settings = experiment_settings({"experiments": config["experiments"]}, "glue_small")
    assert settings.sweep_policies("pabee", "regression") == ["patience"]
    assert settings.sweep_policies("berxit", "regression") == ["patience", "learned"]
    assert settings.sweep_policies("deebert", "regression") == ["patience"]  # no entropy: no classes
    assert "entropy" in settings.sweep_policies("deebert")
    assert settings.options("sweep", "berxit", "stsb")["policies"] == "patience,learned"


def test_policy_pattern_takes_names_and_import_paths_of_any_case():
    pattern = re.compile(
        _schema()["properties"]["experiments"]["additionalProperties"]["properties"]["policies"]["items"][
            "pattern"
        ]
    )
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
