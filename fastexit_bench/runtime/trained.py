"""A trained model opened on one split of its dataset: where `evaluate`, `latency` and `serve-bench` start.

Each of them needs the same sequence: resolve the device, load the model folder, look up its dataset, load
the split tokenized with the record's seed and max length, and resolve the run's precision and attention.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from fastexit_bench.analysis.artifact import ArtifactMetadata, ExitArtifact, LayerOutputs
from fastexit_bench.data.config import DataConfig
from fastexit_bench.data.loading import LoadedSplit
from fastexit_bench.data.spec import DATASETS, DatasetSpec
from fastexit_bench.data.tokenized import load_tokenized
from fastexit_bench.device import resolve_device
from fastexit_bench.errors import DataError
from fastexit_bench.execution import Execution, ExecutionConfig, resolve
from fastexit_bench.locations import Locations
from fastexit_bench.models.early_exit import EarlyExitModel
from fastexit_bench.models.saved import INFO, WEIGHTS, ModelSpec, TrainingRecord, build_model, load_trained
from fastexit_bench.runtime.batches import TokenBatches
from fastexit_bench.runtime.compiled import SegmentedModel, with_runtime

ONNX_FOLDER = "onnx"
"""Where a trained model's exported ONNX graphs are kept, inside its folder."""


def shifted(trained_on: DatasetSpec, other: DatasetSpec) -> DatasetSpec:
    """``other``, refused unless a model of ``trained_on`` can be read on it: the same task and the same labels
    in the same order (an output index must mean the same class)."""
    if (other.task, other.label_names) != (trained_on.task, trained_on.label_names):
        raise DataError(
            f"a model of {trained_on.name} ({trained_on.task}, labels {', '.join(trained_on.label_names) or '-'}) "
            f"cannot be evaluated on {other.name} ({other.task}, labels {', '.join(other.label_names) or '-'}): "
            "a shifted dataset needs the same task and labels in the same order"
        )
    return other


def model_files(folder: Path) -> list[Path]:
    """The files a trained model folder is read from (the inputs an output must not overwrite)."""
    return [folder, folder / WEIGHTS, folder / INFO]


@dataclass
class TrainedSplit:
    """The model (on ``device``, eval mode; what FLOPs are counted on), the same model under the run's
    runtime (``runner``: what inference runs), its record and dataset, one split's rows as batches, and the
    execution the run resolved to."""

    folder: Path
    model: EarlyExitModel
    runner: EarlyExitModel | SegmentedModel
    tokenizer: Any
    record: TrainingRecord
    dataset: DatasetSpec
    split: str
    loaded: LoadedSplit
    rows: datasets.Dataset
    source: TokenBatches
    device: torch.device
    execution: Execution


def open_trained(
    folder: Path,
    split: str | None = None,
    *,
    examples: int | None = None,
    execution: ExecutionConfig | None = None,
    where: Locations | None = None,
    dataset_name: str | None = None,
) -> TrainedSplit:
    """Open the model in ``folder`` on ``split`` (None: its dataset's first evaluation split), a seeded
    subsample of ``examples`` rows (None: all), tokenized as it was trained (the record's seed and length);
    ``execution`` and ``where`` default to their classes' defaults. ``dataset_name``: another dataset with the
    same task and labels to read instead (a distribution shift: the same question asked of another domain)."""
    where = where or Locations()
    device = resolve_device(where.device)
    model, tokenizer, record = load_trained(folder, where.resources)
    trained_on = DATASETS.get(record.dataset)
    record.check_dataset(trained_on.num_outputs, Path(folder) / INFO)
    dataset = trained_on if dataset_name is None else shifted(trained_on, DATASETS.get(dataset_name))
    split = split or dataset.eval_splits[0]
    data = DataConfig(max_train=examples, max_eval=examples, max_length=record.max_length, seed=record.seed)
    loaded, rows = load_tokenized(dataset, split, tokenizer, data, where)
    resolved = resolve(execution or ExecutionConfig(), device)
    model = model.to(device)
    return TrainedSplit(
        Path(folder),
        model,
        with_runtime(model, resolved, Path(folder) / ONNX_FOLDER),
        tokenizer,
        record,
        dataset,
        split,
        loaded,
        rows,
        TokenBatches(rows, tokenizer, device),
        device,
        resolved,
    )


def artifact_rows(artifact: ExitArtifact, tokenizer: Any, where: Locations) -> datasets.Dataset:
    """An artefact's own examples, tokenized as its model was (the subsample's seed and size, the max length),
    refused unless their token lengths are the artefact's."""
    meta, examples = artifact.metadata, len(artifact.lengths)
    data = DataConfig(max_train=examples, max_eval=examples, max_length=meta.max_length, seed=meta.seed)
    rows = load_tokenized(DATASETS.get(meta.dataset), meta.split, tokenizer, data, where)[1]
    if not np.array_equal(np.asarray(rows["length"]), artifact.lengths):
        raise DataError(
            f"the {meta.dataset} {meta.split} rows found (mirror {where.mirror or 'none'}) are not the examples "
            "the artefact was evaluated on (their token lengths differ); give the mirror it was evaluated from"
        )
    return rows


@dataclass
class ReplayedSplit:
    """An evaluation artefact opened to be timed where its trained weights are not: a model of its
    architecture (its pretrained backbone, fresh heads; compute does not depend on weight values) and that
    model under the run's runtime, a seeded subsample of the artefact's own rows, and their ``recorded``
    outputs, which every exit and answer is replayed from (``Scheduler.replaying``, ``runtime.engine``)."""

    artifact: Path
    metadata: ArtifactMetadata
    model: EarlyExitModel
    runner: EarlyExitModel | SegmentedModel
    source: TokenBatches
    recorded: LayerOutputs
    device: torch.device
    execution: Execution


def open_replayed(
    path: Path,
    *,
    examples: int | None = None,
    execution: ExecutionConfig | None = None,
    where: Locations | None = None,
    seed: int = 0,
) -> ReplayedSplit:
    """Open the artefact at ``path`` for replay on ``examples`` of its rows (a subsample seeded by ``seed``;
    None: all)."""
    where = where or Locations()
    device = resolve_device(where.device)
    artifact = ExitArtifact.load(path)
    model, tokenizer, _ = build_model(ModelSpec(**artifact.metadata.model), where.resources)
    rows = artifact_rows(artifact, tokenizer, where)
    chosen = np.arange(len(rows))
    if examples is not None and examples < len(rows):
        chosen = np.sort(np.random.default_rng(seed).choice(len(rows), examples, replace=False))
    resolved = resolve(execution or ExecutionConfig(), device)
    model = model.to(device).eval()
    return ReplayedSplit(
        Path(path),
        artifact.metadata,
        model,
        with_runtime(model, resolved),
        TokenBatches(rows.select(chosen), tokenizer, device),
        artifact.predictions.select(chosen),
        device,
        resolved,
    )
