"""One fine-tune for every recipe that starts with it.

DeeBERT's stage 1 and the distilled-K recipes' teacher are the baseline's fine-tune: the same model (highway
heads, full depth, seeded the same), data, settings and seed, so a trained baseline is that stage's result,
bit for bit at fp32 (``tests/test_shared_stage.py``). What the first stage computes from is written into every
training record (:func:`first_stage_inputs`); a recipe starts from a saved baseline only when the two are
equal, and its record names the model it started from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastexit_bench.errors import FastExitError
from fastexit_bench.io import sha256_file
from fastexit_bench.locations import ResolvedBackbone
from fastexit_bench.training.config import TrainConfig
from fastexit_bench.training.recipes import Recipe, get_recipe

UNUSED_BY_A_STAGE = ("stages", "checkpoint_every")  # settings that do not change what a stage computes
SOURCE = "baseline"  # the recipe whose saved model is a shared first stage


def starts_from_baseline(
    recipe_name: str, recipes: Sequence[str], own: Mapping[str, Mapping[str, Any]]
) -> bool:
    """Whether the workflow may start ``recipe_name`` from the experiment's baseline: the experiment trains a
    baseline (``recipes``), the recipe's first stage and starting model are the baseline's, and neither recipe
    has settings of its own for that stage (``own``: recipe -> stage -> settings)."""
    if recipe_name == SOURCE or SOURCE not in recipes:
        return False
    recipe, source = get_recipe(recipe_name), get_recipe(SOURCE)
    stage = recipe.stages[0]
    return (
        stage == source.stages[0]
        and recipe.start_spec("", 2, "cls") == source.start_spec("", 2, "cls")
        and stage.name not in own.get(recipe_name, {})
        and stage.name not in own.get(SOURCE, {})
    )


def backbone_identity(backbone: ResolvedBackbone) -> str:
    """What a backbone is, wherever its copy lies: the name asked for and what that copy is. Not the folder it
    was loaded from: a baseline trained in another checkout (another resources folder) is the same start."""
    return f"{backbone.requested} ({backbone.source})"


def first_stage_inputs(
    recipe: Recipe,
    start: Any,
    backbone: ResolvedBackbone,
    dataset: str,
    seed: int,
    max_length: int,
    data_hashes: dict[str, str],
    config: TrainConfig,
    execution: dict[str, str],
) -> dict[str, Any]:
    """Everything the first stage's result depends on, as plain JSON types: the stage, the model it starts
    from (``ModelSpec``), the backbone, the data's content hashes, the seed and every setting it reads."""
    stage = recipe.stages[0]
    settings = {k: v for k, v in asdict(config).items() if k not in UNUSED_BY_A_STAGE}
    inputs = {
        "stage": asdict(stage),
        "model": asdict(start),
        "backbone": backbone_identity(backbone),
        "dataset": dataset,
        "seed": seed,
        "max_length": max_length,
        "data": data_hashes,
        "train_config": settings,
        "stage_settings": asdict(config.of(stage)),
        "execution": execution,
    }
    return json.loads(json.dumps(inputs))  # tuples as lists, as read back from training.json


def check_shareable(record: Any, folder: Path, recipe: Recipe, inputs: dict[str, Any]) -> None:
    """Refuse a saved model that is not this recipe's first stage: another recipe, or other inputs."""
    source = get_recipe(record.recipe)
    if len(source.stages) != 1 or source.stages[0] != recipe.stages[0]:
        raise FastExitError(
            f"{folder} was trained with {record.recipe!r}, whose result is not {recipe.name!r}'s "
            f"first stage; start from a baseline model"
        )
    theirs = record.first_stage
    if theirs:  # older records kept the backbone's folder here: compare what the backbone is
        theirs = {**theirs, "backbone": backbone_identity(record.backbone)}
    if not theirs:
        raise FastExitError(
            f"{folder} does not record what its fine-tune computed from (trained before "
            "training records did); train the baseline again"
        )
    differ = sorted(k for k in inputs.keys() | theirs.keys() if inputs.get(k) != theirs.get(k))
    if differ:
        raise FastExitError(
            f"{folder} was fine-tuned with other {', '.join(differ)} than this run's "
            f"{recipe.stages[0].name!r} stage; train without --finetuned-from, or match them"
        )


def start_from_finetuned(
    folder: Path, model: Any, recipe: Recipe, inputs: dict[str, Any], resources: str | Path | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Load the saved baseline in ``folder`` into ``model`` as the result of ``recipe``'s first stage; returns
    that stage's log (the baseline's) and the provenance the new record keeps."""
    from fastexit_bench.models.saved import WEIGHTS, load_trained

    source, _, record = load_trained(folder, resources)
    check_shareable(record, folder, recipe, inputs)
    model.load_state_dict(source.state_dict())
    provenance = {
        recipe.stages[0].name: {
            "model": str(folder),
            "recipe": record.recipe,
            "weights_sha256": sha256_file(Path(folder) / WEIGHTS),
        }
    }
    return record.stages[:1], provenance
