"""An experiment's settings as the workflow resolves them (preset applied, schema defaults filled) and what it
runs: the backbone of each dataset, its (dataset, recipe, seed) runs and its jobs per rule. The workflow
(``workflow/rules/common.smk``) and ``fastexit-bench plan`` share these, so a plan counts what the workflow runs.
Importing this module needs no torch."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fastexit_bench.data.spec import DATASETS
from fastexit_bench.errors import FastExitError, UnknownNameError
from fastexit_bench.training.presets import PRESETS
from fastexit_bench.training.recipes import get_recipe

SCHEMA = Path("workflow") / "schemas" / "config.schema.yaml"


def apply_presets(config: dict[str, Any]) -> dict[str, Any]:
    """Each experiment's settings over its preset's (its own keys win), before validation fills defaults."""
    for name, settings in config.get("experiments", {}).items():
        if "preset" in settings:
            try:
                preset = PRESETS.get(settings["preset"])
            except UnknownNameError as error:
                raise FastExitError(f"config experiments.{name}: {error}") from None
            config["experiments"][name] = preset.apply(settings)
    return config


def load_config(path: Path, schema: Path = SCHEMA) -> dict[str, Any]:
    """A workflow config file as the workflow sees it: presets applied, validated, defaults filled in."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    for file, what in ((path, "config file"), (schema, "config schema (run from the repository root or pass it)")):
        if not Path(file).is_file():
            raise FastExitError(f"no {what} at {file}")
    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise FastExitError(f"{path} is not YAML ({getattr(error, 'problem', None) or error}{where}); fix the "
                            "file") from None
    if not isinstance(config, dict):
        raise FastExitError(f"{path} holds a {type(config).__name__}, not a config mapping; see config/config.yaml")
    config = apply_presets(config)
    try:
        validate(config, str(schema))
    except WorkflowError as error:
        raise FastExitError(f"{path}: {str(error).splitlines()[0]}") from None
    return config


def experiment_settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """One experiment's settings; an unknown name lists the known ones."""
    try:
        return config["experiments"][name]
    except KeyError:
        raise UnknownNameError(f"unknown experiment {name!r}; the config defines {sorted(config['experiments'])}")


def backbones_of(settings: dict[str, Any]) -> list[str]:
    """Every backbone an experiment names (one for all, or one per language)."""
    backbone = settings["backbone"]
    return [backbone] if isinstance(backbone, str) else list(backbone.values())


def backbone_for(settings: dict[str, Any], dataset: str) -> str:
    """The experiment's backbone for ``dataset``: one for all, or the one for the dataset's language."""
    backbone = settings["backbone"]
    if isinstance(backbone, str):
        return backbone
    language = DATASETS.get(dataset).language
    if language not in backbone:
        raise FastExitError(f"no backbone for {dataset!r} (language {language!r}); add backbone.{language} to the "
                            "experiment")
    return backbone[language]


@dataclass(frozen=True)
class Run:
    """One trained model of an experiment."""

    dataset: str
    recipe: str
    seed: int

    @property
    def stem(self) -> str:
        """Its file stem under the experiment's folders."""
        return f"{self.dataset}.{self.recipe}.seed{self.seed}"


def runs(settings: dict[str, Any]) -> list[Run]:
    """Every (dataset, recipe, seed) an experiment trains."""
    return [Run(d, r, s) for d in settings["datasets"] for r in settings["recipes"] for s in settings["seeds"]]


def latency_runs(settings: dict[str, Any]) -> list[Run]:
    """The runs timed: early-exit models of the first seed (none when ``latency_examples`` is 0)."""
    if not settings["latency_examples"]:
        return []
    first = settings["seeds"][0]
    return [run for run in runs(settings) if run.seed == first and get_recipe(run.recipe).exit_policy is not None]


def job_counts(settings: dict[str, Any]) -> dict[str, int]:
    """Jobs per workflow rule for an experiment's tables (its backbones' probes and shared staging aside)."""
    trained = runs(settings)
    return {
        "stage_data": len(settings["datasets"]),
        "train": len(trained),
        "evaluate": sum(len(DATASETS.get(run.dataset).evaluated_splits) for run in trained),
        "sweep": len(trained),
        "latency": len(latency_runs(settings)),
        "report": 1,
    }


def job_gpus(setting: int | str) -> int:
    """GPUs each train, evaluate and latency job asks for: the config's count, or for ``auto`` 1 where
    ``nvidia-smi -L`` lists a GPU, else 0 (no torch import while the DAG is built)."""
    if setting != "auto":
        return int(setting)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    listed = subprocess.run([smi, "-L"], capture_output=True, text=True, check=False)
    return int(listed.returncode == 0 and "GPU" in listed.stdout)
