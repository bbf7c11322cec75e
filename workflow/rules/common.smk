# Config validation, the names the workflow accepts, and the input/parameter functions the rule files use.
# Defaults live in the package's typed configs; validate() fills them into `config` from the schema
# (tests/test_schema.py proves the two agree), so nothing here carries a fallback value.

import os
import re

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from fastexit_bench.analysis.policies import DEFAULT_POLICIES, resolve_policy
from fastexit_bench.data.loading import available_splits
from fastexit_bench.data.spec import DATASETS, use_dataset_dirs
from fastexit_bench.errors import DataError, FastExitError, UnknownNameError
from fastexit_bench.models.backbones import check_backbone_name
from fastexit_bench.experiments.settings import (
    apply_presets,
    backbone_for,
    backbones_of,
    experiment_settings,
    job_gpus,
    latency_runs,
    runs,
)
from fastexit_bench.training.recipes import get_recipe
from fastexit_bench.training.shared import SOURCE, starts_from_baseline

try:
    apply_presets(config)
except FastExitError as error:
    raise WorkflowError(str(error))
validate(config, "../schemas/config.schema.yaml")


wildcard_constraints:
    dataset="[a-z][a-z0-9_-]*",
    backbone="[a-z][a-z0-9_-]*",
    experiment="[a-z][a-z0-9_]*",
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
    for name, settings in config["experiments"].items():
        where = f"experiments.{name}"
        named += [(where, DATASETS.get, d) for d in settings["datasets"]]
        named += [(where, check_backbone_name, b) for b in backbones_of(settings)]
        named += [(where, get_recipe, r) for r in settings["recipes"]]
        named += [(where, resolve_policy, p) for p in settings.get("policies", [])]
        reference = settings["table"]["reference"]
        if reference not in settings["recipes"]:
            raise WorkflowError(
                f"config {where}: table.reference {reference!r} is not among its recipes "
                f"{settings['recipes']}; the paper table measures every row against it"
            )
    for where, lookup, key in named:
        try:
            lookup(key)
        except FastExitError as error:
            raise WorkflowError(f"config {where}: {error}")


check_names()


def cli_options(**options):
    """{"max_train": 5, "values": {"speed": [0.1, 0.5]}, "max_drop": [0, 1]} -> "--max-train 5
    --values speed=0.1,0.5 --max-drop 0,1": lists are comma-joined, dicts repeat NAME=VALUE, None is left out.
    """

    def text(value):
        return ",".join(map(str, value)) if isinstance(value, list) else str(value)

    flags = []
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, dict):
            flags += [f"{flag} {name}={text(v)}" for name, v in value.items()]
        elif value is not None:
            flags.append(f"{flag} {text(value)}")
    return " ".join(flags)


DATASET_DIR_OPTIONS = " ".join(
    f"--dataset-dir {folder}" for folder in config["dataset_dirs"]
)
LOCATIONS = cli_options(mirror=config["data_mirror"], resources=config["resources"])


def experiment(name):
    """One experiment's settings; an unknown name is a config error that lists the known ones."""
    try:
        return experiment_settings(config, name)
    except UnknownNameError as error:
        raise WorkflowError(str(error))


def require_copy(wildcards):
    """No input files; refuses, while the DAG is built (dry runs too), to stage a dataset that has neither a
    local copy nor a declared hub copy, so a run never fails hours in for want of data.
    """
    spec = DATASETS.get(wildcards.dataset)
    if spec.hub is None and not available_splits(spec, config["data_mirror"]):
        raise WorkflowError(
            f"dataset {spec.name!r} has no local copy (data_mirror: {config['data_mirror']}) and no hub copy "
            f"is declared; set data_mirror to a folder holding it (`fastexit-bench data ls -v` lists the paths tried)"
        )
    return []


def staging(scope):
    """The settings a staging scope samples its data with: the experiment's, or the top level's."""
    return config if scope == PREPARE else experiment(scope)


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
    return staged + probes + reports + claims


def get_claims_inputs(wildcards):
    """The operating points of the default experiments, which `claims` checks."""
    return [f"{R}/tables/{name}_points.csv" for name in config["default_experiments"]]


def experiment_backbone(name, dataset):
    """The experiment's backbone for ``dataset``: one for all, or the one for the dataset's language."""
    try:
        return backbone_for(experiment(name), dataset)
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
    if starts_from_baseline(wildcards.recipe, experiment(wildcards.experiment)):
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
    settings = staging(wildcards.scope)
    options = cli_options(
        max_train=settings["max_train"],
        max_eval=settings["max_eval"],
        max_length=settings["max_length"],
        seed=config["seed"],
    )
    return f"{LOCATIONS} {options}"


def experiment_runs(name):
    """Every (dataset, recipe, seed) an experiment trains, as path stems under its folder."""
    return [(run.dataset, run.stem) for run in runs(experiment(name))]


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
        f"{R}/{name}/latency/{run.stem}.json" for run in latency_runs(experiment(name))
    ]


def get_report_inputs(wildcards):
    name = wildcards.experiment
    return {
        **experiment_sweeps(name),
        "artifacts": experiment_artifacts(name),
        "latency": experiment_latency(name),
    }


def execution_options(settings):
    return cli_options(precision=settings["precision"], attention=settings["attention"])


def train_options(wildcards):
    settings = experiment(wildcards.experiment)
    options = cli_options(
        max_train=settings["max_train"],
        max_eval=settings["max_eval"],
        max_length=settings["max_length"],
        epochs=settings["epochs"],
        lr=settings["lr"],
        batch_size=settings["batch_size"],
        warmup=settings["warmup"],
        weight_decay=settings["weight_decay"],
        keep=settings["keep"],
        frozen=settings["frozen"],
        pooling=settings["pooling"],
        vocabulary=settings["vocabulary"],
        adamw=settings["adamw"],
    )
    stages = " ".join(
        f"--stage {stage}:" + ",".join(f"{key}={value}" for key, value in keys.items())
        for stage, keys in settings["stages"].get(wildcards.recipe, {}).items()
    )
    return f"{LOCATIONS} {execution_options(settings)} {options} {stages}"


def evaluate_options(wildcards):
    settings = experiment(wildcards.experiment)
    options = cli_options(max_examples=settings["max_eval"])
    return f"{LOCATIONS} {execution_options(settings)} {options}"


def sweep_options(wildcards):
    """The experiment's policies that the recipe's model can run (learned-exit ones need its scorer) plus
    its paper policy (its paper table needs it), and the table's operating points of the policies swept.
    """
    settings = experiment(wildcards.experiment)
    recipe = get_recipe(wildcards.recipe)

    def runs_on_recipe(policy):
        return recipe.learned_exit or resolve_policy(policy).reads != "exit_scores"

    policies = [
        p for p in settings.get("policies") or DEFAULT_POLICIES if runs_on_recipe(p)
    ]  # absent: the sweep's own default
    paper_policy = recipe.exit_policy
    policies += [paper_policy] if paper_policy and paper_policy not in policies else []
    values = {p: v for p, v in settings["table"]["values"].items() if p in policies}
    grids = {p: v for p, v in settings["grids"].items() if p in policies}
    return cli_options(
        policies=",".join(policies) if settings.get("policies") and policies else None,
        grid=grids,
        values=values,
        max_drop=settings["table"]["max_drop"],
    )


def report_options(wildcards):
    table = experiment(wildcards.experiment)["table"]
    return cli_options(layout=table["layout"], reference=table["reference"])


def latency_options(wildcards):
    settings = experiment(wildcards.experiment)
    options = cli_options(examples=settings["latency_examples"])
    return f"{LOCATIONS} {execution_options(settings)} {options}"


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
