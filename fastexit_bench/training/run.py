"""One training run, start to finish: the recipe's starting model, the data, the stages, the saved model and
its record. What `fastexit-bench train` and the workflow's train rule run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastexit_bench import provenance
from fastexit_bench.data.config import DataConfig
from fastexit_bench.data.hygiene import check_splits, warnings
from fastexit_bench.data.loading import resolve_mirror
from fastexit_bench.data.spec import DATASETS, dataset_dirs
from fastexit_bench.data.tokenized import load_tokenized
from fastexit_bench.device import resolve_device
from fastexit_bench.errors import FastExitError
from fastexit_bench.execution import resolve
from fastexit_bench.io import check_output_folder, exclusive_use
from fastexit_bench.locations import Locations, resources_dir
from fastexit_bench.models.backbones import check_length
from fastexit_bench.models.saved import (
    INFO,
    DevMetric,
    TrainingRecord,
    build_model,
    pooling_for,
    save_trained,
)
from fastexit_bench.pooling import DEFAULT_POOLING
from fastexit_bench.runtime.batches import TokenBatches
from fastexit_bench.training.config import TrainConfig
from fastexit_bench.training.recipes import get_recipe
from fastexit_bench.training.shared import first_stage_inputs, start_from_finetuned
from fastexit_bench.training.trainer import DevSet, StageLog, Trainer

log = logging.getLogger(__name__)
CHECKPOINT = "train.ckpt"


@dataclass(frozen=True)
class TrainingRun:
    """What to train: a recipe on a dataset from a backbone (name, local folder or hub id), its exit heads
    pooled as ``pooling`` (auto: the backbone's own); ``finetuned_from``: a trained baseline whose fine-tune is
    the recipe's first stage (``training.shared``)."""

    dataset: str
    backbone: str
    recipe: str
    pooling: str = DEFAULT_POOLING
    finetuned_from: Path | None = None


def train(
    run: TrainingRun,
    data: DataConfig,
    config: TrainConfig,
    out: Path,
    *,
    where: Locations,
    provenance_config: dict[str, Any],
    overwrite: bool = False,
    report: Callable[[str], None] = print,
) -> TrainingRecord:
    """Train ``run`` into the folder ``out`` (a killed run started again resumes from its checkpoint; a finished
    model is kept unless ``overwrite``) and return its record."""
    check_output_folder(out, overwrite=overwrite, inputs=read_folders(run, where))
    if (out / INFO).is_file() and not overwrite:
        raise FastExitError(
            f"{out} already holds a trained model ({INFO}); pass --overwrite to train it "
            "again, or choose another --out"
        )
    with exclusive_use(out, "`fastexit-bench train`"):
        return _train(run, data, config, out, where, provenance_config, report)


def read_folders(run: TrainingRun, where: Locations) -> list[Path]:
    """The folders a training run reads (resources with the converted backbones, the data mirror, the user's
    dataset declarations, a backbone or fine-tuned model given as a folder): its output must be none of them,
    hold none and lie in none."""
    folders = [resources_dir(where.resources), *dataset_dirs()]
    mirror = resolve_mirror(where.mirror)
    folders += [mirror] if mirror else []
    given = [Path(run.backbone), *([run.finetuned_from] if run.finetuned_from else [])]
    return folders + [path for path in given if path.exists()]


def _train(
    run: TrainingRun,
    data: DataConfig,
    config: TrainConfig,
    out: Path,
    where: Locations,
    provenance_config: dict[str, Any],
    report: Callable[[str], None],
) -> TrainingRecord:
    spec = DATASETS.get(run.dataset)
    recipe = get_recipe(run.recipe)
    stage_names = [stage.name for stage in recipe.stages]
    for name, _ in config.stages:
        if name not in stage_names:
            raise FastExitError(f"--stage {name}: recipe {recipe.name!r} has stages {stage_names}")
    device = resolve_device(where.device)
    pooling = pooling_for(run.backbone, recipe.head, run.pooling, where.resources)
    start = recipe.start_spec(run.backbone, spec.num_outputs, pooling)
    model, tokenizer, resolved = build_model(start, where.resources, seed=data.seed)
    check_length(data.max_length, model.max_tokens, run.backbone)
    model.to(device)
    (train_loaded, train_rows), (dev_loaded, dev_rows) = (
        load_tokenized(spec, split, tokenizer, data, where)
        for split in (spec.train_split, spec.selection_split)
    )
    hygiene = check_splits(train_loaded, [dev_loaded])
    for line in warnings(hygiene, spec.train_split, spec.task):
        log.warning(line)
    dev = DevSet(TokenBatches(dev_rows, tokenizer, device), spec.task, spec.metrics[0])
    train_batches = TokenBatches(train_rows, tokenizer, device)
    first_stage = first_stage_inputs(
        recipe,
        start,
        resolved,
        spec.name,
        data.seed,
        data.max_length,
        {"train": train_batches.content_hash(), "dev": dev.source.content_hash()},
        config,
        resolve(config.execution, device).to_dict(),
    )
    finished, shared = [], {}
    if run.finetuned_from:
        finished, shared = start_from_finetuned(
            run.finetuned_from, model, recipe, first_stage, where.resources
        )
    trainer = Trainer(
        model,
        recipe,
        train_batches,
        dev,
        spec.task,
        config,
        checkpoint=out / CHECKPOINT,
        finished=[StageLog.from_dict(stage_log) for stage_log in finished],
    )
    report(
        f"training {recipe.name} on {spec.name} ({len(train_rows)} train / {len(dev_rows)} dev rows) "
        f"with {resolved.requested} ({model.num_layers} layers, {pooling} pooling) on {device}, "
        f"{trainer.execution.precision}, {trainer.execution.attention} attention"
    )
    logs = trainer.run()
    final = logs[-1].epochs[logs[-1].best_epoch - 1].dev_metric
    record = TrainingRecord(
        model=recipe.model_spec(run.backbone, spec.num_outputs, pooling),  # a distilled recipe's student
        dataset=spec.name,
        recipe=recipe.name,
        seed=data.seed,
        max_length=data.max_length,
        backbone=resolved,
        train_config=asdict(config),
        data={
            "train": train_loaded.origin,
            "dev": {"split": dev_loaded.split, **dev_loaded.origin},
            "hygiene": {split: h.to_dict() for split, h in hygiene.items()},
        },
        stages=[asdict(stage_log) for stage_log in logs],
        dev_metric=DevMetric(spec.metrics[0], final),
        provenance=provenance.collect(config=provenance_config),
        execution=trainer.execution,
        first_stage=first_stage,
        shared_stages=shared,
        exit_policy=recipe.exit_policy,
    )
    save_trained(out, trainer.model.cpu(), record)
    (out / CHECKPOINT).unlink()
    return record
