"""Every exit's outputs on one split, with what the artefact needs to be read without the model."""

from __future__ import annotations

from typing import Any

from fastexit_bench import provenance
from fastexit_bench.analysis.artifact import ArtifactMetadata, ExitArtifact
from fastexit_bench.data.spec import DATASETS
from fastexit_bench.execution import running
from fastexit_bench.io import sha256_file
from fastexit_bench.models.saved import WEIGHTS
from fastexit_bench.models.tracing import measure_fvcore
from fastexit_bench.runtime.predict import predict
from fastexit_bench.runtime.trained import TrainedSplit


def evaluate(trained: TrainedSplit, batch_size: int, config: dict[str, Any]) -> ExitArtifact:
    """The evaluation artefact of ``trained``'s split: per-exit logits (and learned-exit scores), labels,
    lengths and texts, with the model's FLOPs and every metric at every exit; ``config`` is recorded as the
    run's provenance."""
    spec, record, model = trained.dataset, trained.record, trained.model
    flops = measure_fvcore(model)
    with running(model.config, trained.execution, trained.device, inference=model.layers):
        predictions = predict(
            trained.runner, trained.source, spec.task, batch_size, what=f"evaluate {trained.split}"
        )
    metadata = ArtifactMetadata(
        dataset=spec.name,
        split=trained.split,
        task=spec.task,
        metrics=list(spec.metrics),
        recipe=record.recipe,
        backbone=record.backbone,
        seed=record.seed,
        architecture=model.architecture(),
        label_names=list(spec.label_names),
        model=record.to_dict()["model"],
        flops=flops.to_dict(),
        max_length=record.max_length,
        model_dir=str(trained.folder),
        model_sha256=sha256_file(trained.folder / WEIGHTS),
        trained_at_commit=record.provenance.git_commit,
        data_origin=trained.loaded.origin,
        layer_metrics=predictions.layer_metrics(spec.metrics) if predictions.labels is not None else None,
        provenance=provenance.collect(config=config),
        execution=trained.execution,
        exit_policy=record.exit_policy,
        trained_on=record.dataset if record.dataset != spec.name else None,
        train_rows=record.data.get("train", {}).get("rows"),
        published_train_rows=DATASETS.get(record.dataset).published_train_rows,
    )
    texts = trained.loaded.frame[list(spec.text_fields)].astype(str).agg(" / ".join, axis=1).to_numpy()
    return ExitArtifact(predictions, trained.rows.with_format("numpy")["length"], metadata, texts)
