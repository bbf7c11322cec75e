# Config validation and the input/parameter helpers the rule files use.

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from fastexit_bench.data.spec import DATASETS


validate(config, "../schemas/config.schema.yaml")


wildcard_constraints:
    dataset="[a-z][a-z0-9_-]*",
    backbone="[a-z][a-z0-9_-]*",
    experiment="[a-z][a-z0-9_]*",
    recipe="[a-z][a-z0-9-]*",
    seed="[0-9]+",


def get_final_output():
    """Files the default target builds: staged datasets, backbone probes, and the tables and plots of
    the default experiments."""
    staged = [
        f"results/data/{item['dataset']}.{item['backbone']}.json" for item in config["prepare"]
    ]
    probes = sorted(
        {f"results/backbones/{item['backbone']}.json" for item in config["prepare"]}
    )
    reports = []
    for name in config["default_experiments"]:
        experiment(name)
        reports += [f"results/tables/{name}.md", f"results/plots/{name}/metric_vs_flops.png"]
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


def experiment_outputs(name, kind, suffix):
    """Every (dataset, recipe, seed) file of one kind ("sweeps", "exits") for an experiment."""
    settings = experiment(name)
    return [
        f"results/{name}/{kind}/{dataset}.{recipe}.seed{seed}.{suffix}"
        for dataset in settings["datasets"]
        for recipe in settings["recipes"]
        for seed in settings["seeds"]
    ]


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
