# Config validation and the input/parameter helpers the rule files use.

import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from fastexit_bench.data.spec import DATASETS
from fastexit_bench.training.recipes import get_recipe


validate(config, "../schemas/config.schema.yaml")


wildcard_constraints:
    dataset="[a-z][a-z0-9_-]*",
    backbone="[a-z][a-z0-9_-]*",
    experiment="[a-z][a-z0-9_]*",
    recipe="[a-z][a-z0-9-]*",
    seed="[0-9]+",
    split="[a-z_]+",


R = config["results"]


def get_final_output():
    """Files the default target builds: staged datasets, backbone probes, and the tables and plots of
    the default experiments."""
    staged = [f"{R}/data/{item['dataset']}.{item['backbone']}.json" for item in config["prepare"]]
    probes = sorted({f"{R}/backbones/{item['backbone']}.json" for item in config["prepare"]})
    reports = []
    for name in config["default_experiments"]:
        experiment(name)
        reports += [f"{R}/tables/{name}.md", f"{R}/plots/{name}/metric_vs_flops.png"]
    return staged + probes + reports


def experiment(name):
    """One experiment's settings; an unknown name is a config error that lists the known ones."""
    try:
        return config["experiments"][name]
    except KeyError:
        raise WorkflowError(
            f"unknown experiment {name!r}; config/config.yaml defines {sorted(config['experiments'])}"
        )


def experiment_backbone(name, dataset):
    """The experiment's backbone for ``dataset``: one for all, or the one for the dataset's language."""
    backbone = experiment(name)["backbone"]
    if isinstance(backbone, str):
        return backbone
    language = DATASETS.get(dataset).language
    if language not in backbone:
        raise WorkflowError(
            f"experiment {name!r} has no backbone for {dataset!r} (language {language!r}); "
            f"add backbone.{language} in config/config.yaml"
        )
    return backbone[language]


def experiment_runs(name):
    """Every (dataset, recipe, seed) an experiment trains, as path stems under its folder."""
    settings = experiment(name)
    return [
        (dataset, f"{dataset}.{recipe}.seed{seed}")
        for dataset in settings["datasets"]
        for recipe in settings["recipes"]
        for seed in settings["seeds"]
    ]


def experiment_sweeps(name):
    return [f"{R}/{name}/sweeps/{stem}.csv" for _, stem in experiment_runs(name)]


def experiment_artifacts(name):
    """Evaluation artefacts of every run on each of its dataset's evaluation splits."""
    return [
        f"{R}/{name}/exits/{stem}.{split}.npz"
        for dataset, stem in experiment_runs(name)
        for split in DATASETS.get(dataset).eval_splits
    ]


def experiment_latency(name):
    """Timings of the early-exit models of an experiment's first seed (none when latency_examples is 0)."""
    settings = experiment(name)
    if not settings.get("latency_examples", 256):
        return []
    seed = settings["seeds"][0]
    return [
        f"{R}/{name}/latency/{dataset}.{recipe}.seed{seed}.json"
        for dataset in settings["datasets"]
        for recipe in settings["recipes"]
        if get_recipe(recipe).exit_policy is not None
    ]


def table_args(name):
    """The paper table's layout and operating points, as `report` and `latency` take them."""
    table = experiment(name).get("table", {})
    values = " ".join(
        f"--values {policy}={','.join(str(v) for v in values)}"
        for policy, values in table.get("values", {}).items()
    )
    max_drop = ",".join(str(v) for v in table.get("max_drop", [0, 1, 2]))
    return f"{values} --max-drop {max_drop}".strip()


def paper_table_args(name):
    layout = experiment(name).get("table", {}).get("layout", "deebert")
    return f"--layout {layout} {table_args(name)}"


def latency_args(name):
    settings = experiment(name)
    options = cli_args(
        {
            "mirror": config["data_mirror"],
            "resources": config["resources"],
            "examples": settings.get("latency_examples", 256),
        }
    )
    return f"{options} {table_args(name)}"


def sweep_inputs(wildcards):
    """The sweep reads the first evaluation split (dev: grids and selection) and reports the dev-chosen
    values on the second (test) where the dataset has one."""
    splits = DATASETS.get(wildcards.dataset).eval_splits
    stem = f"{R}/{wildcards.experiment}/exits/{wildcards.dataset}.{wildcards.recipe}.seed{wildcards.seed}"
    return {"dev": f"{stem}.{splits[0]}.npz", **({"test": f"{stem}.{splits[1]}.npz"} if len(splits) > 1 else {})}


def experiment_data_args(name):
    settings = experiment(name)
    return cli_args(
        {
            "mirror": config["data_mirror"],
            "resources": config["resources"],
            "max_train": settings.get("max_train"),
            "max_eval": settings.get("max_eval"),
            "max_length": settings.get("max_length", 128),
        }
    )


def train_args(name, recipe):
    settings = experiment(name)
    stage_lr = " ".join(
        f"--stage-lr {stage}={lr}"
        for stage, lr in settings.get("stage_lr", {}).get(recipe, {}).items()
    )
    options = cli_args(
        {
            "mirror": config["data_mirror"],
            "resources": config["resources"],
            "max_train": settings.get("max_train"),
            "max_eval": settings.get("max_eval"),
            "max_length": settings.get("max_length", 128),
            "epochs": settings.get("epochs", 3),
            "lr": settings.get("lr", 2e-5),
            "batch_size": settings.get("batch_size", 32),
        }
    )
    return f"{options} {stage_lr}".strip()


def evaluate_args(name):
    settings = experiment(name)
    return cli_args(
        {
            "mirror": config["data_mirror"],
            "resources": config["resources"],
            "max_examples": settings.get("max_eval"),
        }
    )


def cli_args(options):
    """Turn {"max_train": 5} into "--max-train 5", skipping unset (None) values."""
    return " ".join(
        f"--{key.replace('_', '-')} {value}"
        for key, value in options.items()
        if value is not None
    )


def data_args(wildcards):
    return cli_args(
        {
            "mirror": config["data_mirror"],
            "resources": config["resources"],
            "max_train": config["max_train_examples"],
            "max_eval": config["max_eval_examples"],
            "max_length": config["max_length"],
            "seed": config["seed"],
        }
    )
