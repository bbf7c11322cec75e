# Config validation, the names the workflow accepts, and the input/parameter functions the rule files use.
# An experiment's settings are typed (ExperimentSettings: defaults from the package's typed configs, none in
# the schema) and every command's options come from them through one function, `options`.

import os
import re
from dataclasses import asdict, replace

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.data.loading import dataset_problem
from fastexit_bench.data.spec import DATASETS, use_dataset_dirs
from fastexit_bench.errors import DataError, FastExitError, UnknownNameError
from fastexit_bench.models.backbones import check_backbone_name
from fastexit_bench.experiments.preflight import preflight
from fastexit_bench.experiments.settings import (
    DATA_KEYS,
    DataConfig,
    apply_presets,
    command_options,
    experiment_settings,
    job_gpus,
)
from fastexit_bench.training.recipes import get_recipe
from fastexit_bench.training.shared import SOURCE

try:
    apply_presets(config)
except FastExitError as error:
    raise WorkflowError(str(error))
validate(config, "../schemas/config.schema.yaml")


wildcard_constraints:
    dataset="[a-z][a-z0-9_-]*",
    backbone="[a-z][a-z0-9_-]*",
    experiment="|".join(sorted(config["experiments"])) or "[a-z][a-z0-9_]*",  # leaderboard.md is not one
    scope="[a-z][a-z0-9_]*",
    recipe="[a-z][a-z0-9-]*",
    seed="[0-9]+",
    split="[a-z_]+",


R = config["results"]
GPUS_PER_JOB = job_gpus(config["gpu"])
PREPARE = "prepare"  # the staging scope of config["prepare"]; every other scope is an experiment


def check_names():
    """Every dataset, backbone, recipe and policy the config names exists (policies given by import path are
    imported), before any job runs (near matches suggested); user dataset folders are registered first.
    """
    try:
        use_dataset_dirs(config["dataset_dirs"])
    except DataError as error:
        raise WorkflowError(f"config dataset_dirs: {error}")
    named = [("prepare", DATASETS.get, item["dataset"]) for item in config["prepare"]]
    named += [
        ("prepare", check_backbone_name, item["backbone"]) for item in config["prepare"]
    ]
    for name in config["experiments"]:
        settings = experiment(name)
        where = f"experiments.{name}"
        named += [(where, DATASETS.get, d) for d in settings.datasets]
        named += [(where, check_backbone_name, b) for b in settings.backbones()]
        named += [(where, get_recipe, r) for r in settings.recipes]
        named += [(where, resolve_policy, p) for p in settings.policies or []]
        reference = settings.table.reference
        if reference not in settings.recipes:
            raise WorkflowError(
                f"config {where}: table.reference {reference!r} is not among its recipes "
                f"{list(settings.recipes)}; the paper table measures every row against it"
            )
    for where, lookup, key in named:
        try:
            lookup(key)
        except FastExitError as error:
            raise WorkflowError(f"config {where}: {error}")


def experiment(name):
    """One experiment's typed settings; an unknown name is a config error that lists the known ones."""
    try:
        return experiment_settings(config, name)
    except (UnknownNameError, FastExitError) as error:
        raise WorkflowError(str(error))


check_names()


DATASET_DIR_OPTIONS = command_options(dataset_dir=list(config["dataset_dirs"]))
LOCATIONS = command_options(mirror=config["data_mirror"], resources=config["resources"])
PREPARE_DATA = DataConfig(**{k: config[k] for k in (*DATA_KEYS, "seed") if k in config})
"""The top level's data settings: how `prepare` stages, and the seed every staging carves splits with."""


def options(command, locations=True):
    """A params function for `fastexit-bench COMMAND`: the experiment's settings for it
    (ExperimentSettings.options), after --mirror and --resources where the command reads data or models.
    """

    def params(wildcards):
        recipe = getattr(wildcards, "recipe", None)
        dataset = getattr(wildcards, "dataset", None)
        settings = experiment(wildcards.experiment).options(command, recipe, dataset)
        return f"{LOCATIONS if locations else ''} {command_options(**settings)}".strip()

    return params


def require_copy(wildcards):
    """No input files; names, while the DAG is built (a dry run shows it), a dataset this machine cannot load
    (no local copy, no reachable hub copy). A real run stops on it before any job (`onstart`).
    """
    problem = dataset_problem(wildcards.dataset, config["data_mirror"])
    if problem and problem not in WARNED:
        WARNED.add(problem)
        logger.warning(f"cannot run here: {problem}")
    return []


WARNED = set()


def run_inputs(jobs):
    """The datasets and backbones the jobs of this run read (from each job's wildcards)."""
    datasets, backbones = set(), set()
    for job in jobs:
        wildcards = job.wildcards_dict
        scope = wildcards.get("scope", wildcards.get("experiment"))
        if "dataset" in wildcards and scope:
            datasets.add(wildcards["dataset"])
            backbones.add(
                wildcards["backbone"]
                if scope == PREPARE
                else experiment_backbone(scope, wildcards["dataset"])
            )
        elif job.rule.name == "probe_backbone":
            backbones.add(wildcards["backbone"])
    return datasets, backbones


def preflight_jobs(jobs):
    """Stop the run before any job, one line per dataset or backbone its jobs need that cannot be loaded
    here (without it the first job reading it fails, after the others staged for minutes).
    """
    datasets, backbones = run_inputs(jobs)
    problems = preflight(datasets, backbones, config["data_mirror"])
    if problems:
        raise SystemExit(
            "\n".join(f"cannot run here: {problem}" for problem in problems)
        )


def get_final_output():
    """Files the default target builds: staged datasets, backbone probes, and the tables and plots of
    the default experiments."""
    staged = [
        f"{R}/{PREPARE}/data/{item['dataset']}.{item['backbone']}.json"
        for item in config["prepare"]
    ]
    probes = sorted(
        {f"{R}/backbones/{item['backbone']}.json" for item in config["prepare"]}
    )
    reports = []
    for name in config["default_experiments"]:
        experiment(name)
        reports += [f"{R}/tables/{name}.md", f"{R}/plots/{name}/metric_vs_flops.png"]
    claims = [f"{R}/claims.md"] if config["default_experiments"] else []
    board = [f"{R}/tables/leaderboard.md"] if get_leaderboard_inputs(None) else []
    return staged + probes + reports + claims + board


def get_claims_inputs(wildcards):
    """The operating points of the default experiments, which `claims` checks."""
    return [f"{R}/tables/{name}_points.csv" for name in config["default_experiments"]]


def get_leaderboard_inputs(wildcards):
    """Both artefacts of every early-exit model (every exit trained) of the default experiments."""
    return [
        f"{R}/{name}/exits/{run.stem}.{split}.npz"
        for name in config["default_experiments"]
        for run in experiment(name).runs()
        if get_recipe(run.recipe).exit_policy is not None
        for split in DATASETS.get(run.dataset).evaluated_splits
    ]


def experiment_backbone(name, dataset):
    """The experiment's backbone for ``dataset``: one for all, or the one for the dataset's language."""
    try:
        return experiment(name).backbone_for(dataset)
    except FastExitError as error:
        raise WorkflowError(f"experiment {name!r}: {error}")


def backbone_key(backbone):
    """A path-safe name for a backbone given as a name, folder or hub id."""
    return re.sub(r"[^a-z0-9_]+", "-", backbone.lower()).strip("-")


def get_staged(wildcards):
    backbone = experiment_backbone(wildcards.experiment, wildcards.dataset)
    return f"{R}/{wildcards.experiment}/data/{wildcards.dataset}.{backbone_key(backbone)}.json"


def get_train_inputs(wildcards):
    """The staged data, and the baseline of the same dataset and seed where the recipe starts from it."""
    inputs = {"data": get_staged(wildcards)}
    if experiment(wildcards.experiment).starts_from_baseline(wildcards.recipe):
        inputs["finetuned"] = (
            f"{R}/{wildcards.experiment}/models/{wildcards.dataset}/{SOURCE}/"
            f"seed{wildcards.seed}/training.json"
        )
    return inputs


def finetuned_option(wildcards, input):
    return (
        f"--finetuned-from {os.path.dirname(input.finetuned)}"
        if "finetuned" in input.keys()
        else ""
    )


def staging_backbone(wildcards):
    """The backbone (its tokenizer) a staged summary was named after."""
    if wildcards.scope == PREPARE:
        return wildcards.backbone
    return experiment_backbone(wildcards.scope, wildcards.dataset)


def staging_options(wildcards):
    """The data settings a staging scope samples with (the experiment's, or the top level's for `prepare`)."""
    scope = wildcards.scope
    data = PREPARE_DATA if scope == PREPARE else experiment(scope).data
    return f"{LOCATIONS} {command_options(**asdict(replace(data, seed=PREPARE_DATA.seed)))}"


def experiment_runs(name):
    """Every (dataset, recipe, seed) an experiment trains, as path stems under its folder."""
    return [(run.dataset, run.stem) for run in experiment(name).runs()]


def experiment_sweeps(name):
    """Every file the sweeps of an experiment write (report reads all four per run)."""
    stems = [f"{R}/{name}/sweeps/{stem}" for _, stem in experiment_runs(name)]
    return {
        "sweeps": [f"{stem}.csv" for stem in stems],
        "scores": [f"{stem}.scores.csv" for stem in stems],
        "selections": [f"{stem}.selection.csv" for stem in stems],
        "records": [f"{stem}.json" for stem in stems],
    }


def experiment_artifacts(name):
    """Evaluation artefacts of every run on the split it is chosen on and the split it is reported on."""
    return [
        f"{R}/{name}/exits/{stem}.{split}.npz"
        for dataset, stem in experiment_runs(name)
        for split in DATASETS.get(dataset).evaluated_splits
    ]


def experiment_latency(name):
    """Timings of the early-exit models of an experiment's first seed (none when latency_examples is 0)."""
    return [
        f"{R}/{name}/latency/{run.stem}.json" for run in experiment(name).latency_runs()
    ]


def get_report_inputs(wildcards):
    name = wildcards.experiment
    return {
        **experiment_sweeps(name),
        "artifacts": experiment_artifacts(name),
        "latency": experiment_latency(name),
    }


def get_sweep_inputs(wildcards):
    """The sweep chooses on the selection split (dev, or a share of train where dev is the reported split)
    and measures the chosen operating points on the split tables report."""
    spec = DATASETS.get(wildcards.dataset)
    stem = f"{R}/{wildcards.experiment}/exits/{wildcards.dataset}.{wildcards.recipe}.seed{wildcards.seed}"
    return {
        "dev": f"{stem}.{spec.selection_split}.npz",
        "test": f"{stem}.{spec.reported_split}.npz",
    }


def reported_split(wildcards):
    return DATASETS.get(wildcards.dataset).reported_split
