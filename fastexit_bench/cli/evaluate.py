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
    locations,
    positive_int,
    subcommand,
)
from fastexit_bench.runtime.config import EVAL_BATCH_SIZE


def add_parser(commands) -> None:
    parser = subcommand(
        commands,
        "evaluate",
        "write per-layer logits, labels, learned-exit scores and lengths for one split",
        "  fastexit-bench evaluate results/models/sst2/minilm-l6/deebert-s0 --split validation \\\n"
        "      --mirror ../shared/data --out results/exits/sst2/minilm-l6/deebert-s0/validation.npz\n"
        "The dataset, max length and seed come from the model's training.json.\n",
        run_evaluate,
    )
    parser.add_argument("model", type=Path, help="model folder written by `fastexit-bench train`")
    parser.add_argument("--split", help="split to evaluate (None: the dataset's first eval split)")
    parser.add_argument(
        "--dataset",
        help="evaluate on this dataset instead of the model's own (same task and labels: a distribution shift; "
        "the artefact records both)",
    )
    parser.add_argument("--out", type=Path, required=True, help=".npz artefact to write")
    add_overwrite_arg(parser)
    add_location_args(parser)
    add_execution_args(parser, inference=True)
    parser.add_argument(
        "--max-eval",
        type=positive_int,
        default=None,
        help="seeded subsample of the split (None: as many rows as the model's dev subsample in training, "
        "or all of it when training used every dev row)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=EVAL_BATCH_SIZE, help="evaluation batch size"
    )


def run_evaluate(args: argparse.Namespace) -> None:
    from fastexit_bench.io import check_output_file
    from fastexit_bench.models.saved import read_record
    from fastexit_bench.runtime.evaluation import evaluate
    from fastexit_bench.runtime.trained import model_files, open_trained

    check_output_file(args.out, inputs=model_files(args.model), overwrite=args.overwrite, suffix=".npz")
    trained = open_trained(
        args.model,
        args.split,
        examples=args.max_eval or read_record(args.model).eval_rows,
        execution=execution_config(args),
        where=locations(args),
        dataset_name=args.dataset,
    )
    artifact = evaluate(trained, args.batch_size, config_of(args))
    artifact.save(args.out)
    metrics = artifact.metadata.metrics
    if artifact.metadata.layer_metrics is not None:
        emit(f"{'layer':>5}  " + "  ".join(f"{m:>9}" for m in metrics))
        for layer, values in enumerate(artifact.metadata.layer_metrics, start=1):
            emit(f"{layer:>5}  " + "  ".join(f"{values[m]:9.4f}" for m in metrics))
    emit(
        f"wrote {args.out} ({len(trained.rows)} examples, {artifact.predictions.num_layers} exits, "
        f"{trained.execution.precision}, {trained.execution.attention} attention)"
    )
