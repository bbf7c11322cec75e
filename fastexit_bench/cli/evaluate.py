"""``fastexit-bench evaluate``: every exit's outputs on one split, written as the evaluation artefact."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench.cli.common import (
    add_execution_args,
    add_location_args,
    add_overwrite_arg,
    config_of,
    emit,
    execution_config,
    positive_int,
    subcommand,
)
from fastexit_bench.data.config import DataConfig
from fastexit_bench.training.config import TrainConfig


def add_parser(commands) -> None:
    parser = subcommand(
        commands, "evaluate", "write per-layer logits, labels, learned-exit scores and lengths for one split",
        "  fastexit-bench evaluate results/models/sst2/minilm-l6/deebert-s0 --split validation \\\n"
        "      --mirror ../shared/data --out results/exits/sst2/minilm-l6/deebert-s0/validation.npz\n"
        "The dataset, max length and seed come from the model's training.json.\n",
        run_evaluate,
    )
    parser.add_argument("model", type=Path, help="model folder written by `fastexit-bench train`")
    parser.add_argument("--split", help="split to evaluate (None: the dataset's first eval split)")
    parser.add_argument("--out", type=Path, required=True, help=".npz artefact to write")
    add_overwrite_arg(parser)
    add_location_args(parser)
    add_execution_args(parser)
    parser.add_argument("--max-examples", type=positive_int, default=DataConfig.max_eval,
                        help="seeded subsample of the split (None: all of it)")
    parser.add_argument("--batch-size", type=positive_int, default=TrainConfig.eval_batch_size, help="evaluation batch size")


def run_evaluate(args: argparse.Namespace) -> None:
    from fastexit_bench import provenance
    from fastexit_bench.analysis.artifact import ArtifactMetadata, ExitArtifact
    from fastexit_bench.data.spec import DATASETS
    from fastexit_bench.data.tokenized import load_tokenized
    from fastexit_bench.device import resolve_device
    from fastexit_bench.execution import resolve, running
    from fastexit_bench.io import check_output_file, sha256_file
    from fastexit_bench.models.saved import INFO, WEIGHTS, load_trained
    from fastexit_bench.models.tracing import measure_fvcore
    from fastexit_bench.runtime.batches import TokenBatches
    from fastexit_bench.runtime.predict import predict

    check_output_file(args.out, inputs=[args.model, args.model / WEIGHTS, args.model / INFO],
                      overwrite=args.overwrite, suffix=".npz")
    device = resolve_device(args.device)
    model, tokenizer, record = load_trained(args.model, args.resources)
    spec = DATASETS.get(record.dataset)
    split = args.split or spec.eval_splits[0]
    loaded, rows = load_tokenized(spec, split, tokenizer, mirror=args.mirror, max_examples=args.max_examples,
                                  seed=record.seed, max_length=record.max_length, resources=args.resources)
    flops = measure_fvcore(model)
    execution = resolve(execution_config(args), device)
    with running(model.config, execution, device):
        predictions = predict(model.to(device), TokenBatches(rows, tokenizer, device), spec.task, args.batch_size)
    per_layer = predictions.layer_metrics(spec.metrics) if predictions.labels is not None else None
    metadata = ArtifactMetadata(
        dataset=spec.name, split=split, task=spec.task, metrics=list(spec.metrics), recipe=record.recipe,
        backbone=record.backbone, seed=record.seed, architecture=model.architecture(),
        label_names=list(spec.label_names), model=record.to_dict()["model"], flops=flops.to_dict(),
        max_length=record.max_length, model_dir=str(args.model), model_sha256=sha256_file(args.model / WEIGHTS),
        trained_at_commit=record.provenance.get("git_commit"), data_origin=loaded.origin, layer_metrics=per_layer,
        provenance=provenance.collect(config=config_of(args)), execution=execution.to_dict(),
    )
    texts = loaded.frame[list(spec.text_fields)].astype(str).agg(" / ".join, axis=1).to_numpy()
    ExitArtifact(predictions, rows.with_format("numpy")["length"], metadata, texts).save(args.out)
    if per_layer is not None:
        emit(f"{'layer':>5}  " + "  ".join(f"{m:>9}" for m in spec.metrics))
        for layer, values in enumerate(per_layer, start=1):
            emit(f"{layer:>5}  " + "  ".join(f"{values[m]:9.4f}" for m in spec.metrics))
    emit(f"wrote {args.out} ({len(rows)} examples, {predictions.num_layers} exits, {execution.precision}, "
         f"{execution.attention} attention)")
