# Config validation and the input/parameter helpers the rule files use.

from snakemake.utils import validate


validate(config, "../schemas/config.schema.yaml")


wildcard_constraints:
    dataset="[a-z][a-z0-9_-]*",
    backbone="[a-z][a-z0-9_-]*",


def get_final_output():
    """Files the default target builds: staged datasets and backbone probes."""
    staged = [
        f"results/data/{item['dataset']}.{item['backbone']}.json" for item in config["prepare"]
    ]
    probes = sorted(
        {f"results/backbones/{item['backbone']}.json" for item in config["prepare"]}
    )
    return staged + probes


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
