"""An experiment's settings as the workflow resolves them (preset applied, typed, defaults filled) and what it
runs: the backbone of each dataset, its (dataset, recipe, seed) runs and its jobs per rule. The workflow
(``workflow/rules/common.smk``) and ``fastexit-bench plan`` share these, so a plan counts what the workflow runs.
Importing this module needs no torch."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from shlex import quote
from typing import Any

import yaml

from fastexit_bench.analysis.operating_points import OperatingPointSpec
from fastexit_bench.analysis.policies import DEFAULT_POLICIES, resolve_policy
from fastexit_bench.data.config import DataConfig
from fastexit_bench.data.spec import DATASETS
from fastexit_bench.errors import FastExitError, UnknownNameError
from fastexit_bench.execution import ExecutionConfig
from fastexit_bench.pooling import DEFAULT_POOLING
from fastexit_bench.reporting.paper import TableSpec
from fastexit_bench.runtime.config import LatencyConfig
from fastexit_bench.training.config import TrainConfig
from fastexit_bench.training.presets import PRESETS
from fastexit_bench.training.recipes import get_recipe
from fastexit_bench.training.shared import starts_from_baseline

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

    for file, what in (
        (path, "config file"),
        (schema, "config schema (run from the repository root or pass it)"),
    ):
        if not Path(file).is_file():
            raise FastExitError(f"no {what} at {file}")
    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise FastExitError(
            f"{path} is not YAML ({getattr(error, 'problem', None) or error}{where}); fix the file"
        ) from None
    if not isinstance(config, dict):
        raise FastExitError(
            f"{path} holds a {type(config).__name__}, not a config mapping; see config/config.yaml"
        )
    config = apply_presets(config)
    try:
        validate(config, str(schema))
    except WorkflowError as error:
        raise FastExitError(f"{path}: {str(error).splitlines()[0]}") from None
    return config


TRAIN_KEYS = (
    "epochs",
    "lr",
    "batch_size",
    "warmup",
    "weight_decay",
    "keep",
    "frozen",
    "vocabulary",
    "adamw",
    "group_by_length",
)
"""The experiment keys that are :class:`TrainConfig` fields of the same name."""
DATA_KEYS = ("max_train", "max_eval", "max_length")
"""The experiment keys that are :class:`DataConfig` fields (its seed is each run's)."""


def _typed(cls: type, raw: dict[str, Any], keys: tuple[str, ...], **extra: Any) -> Any:
    """``cls`` built from the ``keys`` that ``raw`` sets, its own defaults for the rest."""
    return cls(**{key: raw[key] for key in keys if key in raw}, **extra)


@dataclass(frozen=True)
class ExperimentSettings:
    """One experiment of the workflow config, typed, its preset applied and every default filled from the
    typed config that owns it (:class:`DataConfig`, :class:`TrainConfig`, :class:`ExecutionConfig`,
    :class:`LatencyConfig`, :class:`TableSpec`, :class:`OperatingPointSpec`); the schema carries none of them.
    The workflow's command options come from here (:meth:`options`), and so does `fastexit-bench plan`."""

    name: str
    datasets: tuple[str, ...]
    backbone: str | dict[str, str]
    recipes: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    seeds_by_recipe: dict[str, tuple[int, ...]] = field(default_factory=dict)  # recipe -> its own seeds
    policies: tuple[str, ...] | None = None  # None: every built-in policy that applies to the model
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stages: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # recipe -> stage -> settings
    pooling: str = DEFAULT_POOLING
    share_finetune: bool = True
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    table: TableSpec = field(default_factory=TableSpec)
    points: OperatingPointSpec = field(default_factory=OperatingPointSpec)
    grids: dict[str, tuple[float, ...]] = field(default_factory=dict)
    preset: str | None = None

    def __post_init__(self) -> None:
        if stray := sorted(set(self.seeds_by_recipe) - set(self.recipes)):
            raise FastExitError(
                f"experiment {self.name!r}: seeds_by_recipe names {stray}, which are not among its recipes "
                f"{list(self.recipes)}; add them to recipes or remove them from seeds_by_recipe"
            )

    @classmethod
    def from_config(cls, name: str, raw: dict[str, Any]) -> ExperimentSettings:
        """From one entry of ``config["experiments"]`` (presets applied, validated by the schema)."""
        table = raw.get("table", {})
        return cls(
            name=name,
            datasets=tuple(raw["datasets"]),
            backbone=raw["backbone"],
            recipes=tuple(raw["recipes"]),
            seeds=tuple(raw.get("seeds", cls.seeds)),
            seeds_by_recipe={r: tuple(s) for r, s in raw.get("seeds_by_recipe", {}).items()},
            policies=tuple(raw["policies"]) if raw.get("policies") else None,
            data=_typed(DataConfig, raw, DATA_KEYS),
            train=_typed(
                TrainConfig,
                raw,
                TRAIN_KEYS,
                execution=_typed(ExecutionConfig, raw, ("precision", "attention", "runtime")),
            ),
            stages=raw.get("stages", {}),
            pooling=raw.get("pooling", cls.pooling),
            share_finetune=raw.get("share_finetune", cls.share_finetune),
            latency=LatencyConfig(examples=raw.get("latency_examples", LatencyConfig.examples)),
            table=_typed(TableSpec, table, ("layout", "reference")),
            points=OperatingPointSpec(
                values={p: tuple(v) for p, v in table.get("values", {}).items()},
                **({"max_drop": tuple(table["max_drop"])} if "max_drop" in table else {}),
                **({"risk": tuple(table["risk"])} if "risk" in table else {}),
                **({"risk_epsilon": table["risk_epsilon"]} if "risk_epsilon" in table else {}),
            ),
            grids={p: tuple(v) for p, v in raw.get("grids", {}).items()},
            preset=raw.get("preset"),
        )

    def backbones(self) -> list[str]:
        """Every backbone the experiment names (one for all, or one per language)."""
        return [self.backbone] if isinstance(self.backbone, str) else list(self.backbone.values())

    def backbone_for(self, dataset: str) -> str:
        """The backbone for ``dataset``: one for all, or the one for the dataset's language."""
        if isinstance(self.backbone, str):
            return self.backbone
        language = DATASETS.get(dataset).language
        if language not in self.backbone:
            raise FastExitError(
                f"no backbone for {dataset!r} (language {language!r}); add backbone.{language} "
                "to the experiment"
            )
        return self.backbone[language]

    def seeds_for(self, recipe: str) -> tuple[int, ...]:
        """The seeds ``recipe`` trains: its own (``seeds_by_recipe``), else the experiment's."""
        return self.seeds_by_recipe.get(recipe, self.seeds)

    def runs(self) -> list[Run]:
        """Every (dataset, recipe, seed) the experiment trains."""
        return [Run(d, r, s) for d in self.datasets for r in self.recipes for s in self.seeds_for(r)]

    def latency_runs(self) -> list[Run]:
        """The runs timed: early-exit models of their recipe's first seed (none when ``latency_examples`` is
        0)."""
        if not self.latency.examples:
            return []
        return [
            run
            for run in self.runs()
            if run.seed == self.seeds_for(run.recipe)[0] and get_recipe(run.recipe).exit_policy is not None
        ]

    def job_counts(self) -> dict[str, int]:
        """Jobs per workflow rule for the experiment's tables (its backbones' probes and shared staging aside)."""
        trained = self.runs()
        return {
            "stage_data": len(self.datasets),
            "train": len(trained),
            "evaluate": sum(len(DATASETS.get(run.dataset).evaluated_splits) for run in trained),
            "sweep": len(trained),
            "latency": len(self.latency_runs()),
            "report": 1,
        }

    def train_config(self, recipe: str) -> TrainConfig:
        """The run settings of ``recipe``: the experiment's, with its named stages' own."""
        return replace(self.train, stages=tuple(self.stages.get(recipe, {}).items()))

    def starts_from_baseline(self, recipe: str) -> bool:
        """Whether ``recipe`` starts from the experiment's baseline of the same seed (``training.shared``)."""
        return self.share_finetune and starts_from_baseline(recipe, self.recipes, self.stages)

    def sweep_policies(self, recipe_name: str, task: str = "classification") -> list[str]:
        """The experiment's policies that the recipe's model can run on ``task`` (learned-exit ones need its
        scorer; those reading class probabilities need classes), plus its paper policy where it can run
        (its paper table needs it)."""
        recipe = get_recipe(recipe_name)

        def runs(name: str) -> bool:
            policy = resolve_policy(name)
            return task in policy.tasks and (recipe.learned_exit or policy.reads != "exit_scores")

        policies = [p for p in self.policies or DEFAULT_POLICIES if runs(p)]
        paper = recipe.exit_policy
        return policies + ([paper] if paper and paper not in policies and runs(paper) else [])

    def options(self, command: str, recipe: str | None = None, dataset: str | None = None) -> dict[str, Any]:
        """The options of ``fastexit-bench COMMAND`` that carry this experiment's settings (for
        :func:`command_options`); ``recipe`` for ``train`` and ``sweep``, ``dataset`` for ``sweep`` (its
        task decides which policies can run)."""
        execution = asdict(self.train.execution)
        if command == "stage":
            return {**_fields(self.data, DATA_KEYS)}
        if command == "train":
            train = self.train_config(recipe)
            return {
                **_fields(self.data, DATA_KEYS),
                **_fields(train, TRAIN_KEYS),
                "pooling": self.pooling,
                **{k: v for k, v in execution.items() if k != "runtime"},  # training always runs eager
                "stage": [
                    f"{stage}:" + ",".join(f"{k}={v}" for k, v in keys.items())
                    for stage, keys in self.stages.get(recipe, {}).items()
                ],
            }
        if command == "evaluate":
            return {"max_eval": self.data.max_eval, **execution}
        if command == "latency":
            return {"examples": self.latency.examples, **execution}
        if command == "sweep":
            policies = self.sweep_policies(
                recipe, DATASETS.get(dataset).task if dataset else "classification"
            )
            return {
                "policies": ",".join(policies) if self.policies and policies else None,
                "grid": {p: v for p, v in self.grids.items() if p in policies},
                "values": {p: v for p, v in self.points.values.items() if p in policies},
                "max_drop": self.points.max_drop,
                "risk": self.points.risk,
                "risk_epsilon": self.points.risk_epsilon,
            }
        if command == "report":
            return asdict(self.table)
        raise ValueError(f"no options for command {command!r}")


def _fields(config: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: getattr(config, key) for key in keys}


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def command_options(**options: Any) -> str:
    """{"max_train": 5, "values": {"speed": (0.1, 0.5)}, "max_drop": (0, 1), "stage": ["a:lr=1"]} ->
    "--max-train 5 --values speed=0.1,0.5 --max-drop 0,1 --stage a:lr=1": tuples are comma-joined, dicts
    repeat NAME=VALUE, lists repeat the option, booleans are --NAME or --no-NAME, None is left out. Every
    value is quoted for the shell (a config path with a space stays one argument)."""
    flags = []
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, dict):
            flags += [f"{flag} {quote(f'{name}=' + ','.join(map(_text, v)))}" for name, v in value.items()]
        elif isinstance(value, list):
            flags += [f"{flag} {quote(str(item))}" for item in value]
        elif isinstance(value, bool):
            flags.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, tuple):
            flags.append(f"{flag} {quote(','.join(map(_text, value)))}")  # '': an empty list
        elif value is not None:
            flags.append(f"{flag} {quote(_text(value))}")
    return " ".join(flags)


def experiment_settings(config: dict[str, Any], name: str) -> ExperimentSettings:
    """One experiment's typed settings; an unknown name lists the known ones."""
    try:
        raw = config["experiments"][name]
    except KeyError:
        raise UnknownNameError(
            f"unknown experiment {name!r}; the config defines {sorted(config['experiments'])}"
        )
    return ExperimentSettings.from_config(name, raw)


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
