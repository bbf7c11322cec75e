"""``fastexit-bench evaluate``: every exit's outputs on one split, written as the evaluation artefact."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench.cli.common import add_location_args, config_of, emit, subcommand


def add_parser(commands) -> None:
    parser = subcommand(
        commands, "evaluate", "write per-layer logits, labels, learned-exit scores and lengths for one split",
        "  fastexit-bench evaluate results/models/sst2/minilm-l6/deebert-s0 --split validation \\\n"
        "      --mirror ../shared/data --out results/exits/sst2/minilm-l6/deebert-s0/validation.npz\n"
        "The dataset, max length and seed come from the model's training.json.\n",
        run_evaluate,
    )
    parser.add_argument("model", type=Path, help="model folder written by `fastexit-bench train`")
    parser.add_argument("--split", help="split to evaluate (default: the dataset's first eval split)")
    parser.add_argument("--out", type=Path, required=True, help=".npz artefact to write")
    add_location_args(parser)
    parser.add_argument("--max-examples", type=int, help="seeded subsample of the split (default: all of it)")
    parser.add_argument("--batch-size", type=int, default=128)


def run_evaluate(args: argparse.Namespace) -> None:
    from fastexit_bench import provenance
    from fastexit_bench.data.spec import DATASETS
    from fastexit_bench.data.tokenized import load_tokenized
    from fastexit_bench.device import resolve_device
    from fastexit_bench.analysis.artifact import ExitArtifact, predict
    from fastexit_bench.analysis.flops import measure_fvcore
    from fastexit_bench.io import sha256_file
    from fastexit_bench.models.saved import WEIGHTS, load_trained
    from fastexit_bench.runtime.batches import TokenBatches

    device = resolve_device(args.device)
    model, tokenizer, info = load_trained(args.model, args.resources)
    spec = DATASETS.get(info["dataset"])
    split = args.split or spec.eval_splits[0]
    loaded, rows = load_tokenized(spec, split, tokenizer, mirror=args.mirror, max_examples=args.max_examples,
                                  seed=info["seed"], max_length=info["max_length"],
                                  resources=args.resources)
    flops = measure_fvcore(model)
    predictions = predict(model.to(device), TokenBatches(rows, tokenizer, device), args.batch_size)
    per_layer = predictions.layer_metrics(spec.task, spec.metrics) if predictions.labels is not None else None
    ExitArtifact(predictions, rows.with_format("numpy")["length"], {
        "dataset": spec.name, "split": split, "task": spec.task, "metrics": list(spec.metrics),
        "label_names": list(spec.label_names), "recipe": info["recipe"], "backbone": info["backbone"],
        "model": info["model"], "architecture": model.architecture(),
        "flops": flops.to_dict(), "seed": info["seed"], "max_length": info["max_length"],
        "model_dir": str(args.model), "model_sha256": sha256_file(args.model / WEIGHTS),
        "trained_at_commit": info["provenance"]["git_commit"], "data_origin": loaded.origin,
        "layer_metrics": per_layer,
        "provenance": provenance.collect(config=config_of(args)),
    }).save(args.out)
    if per_layer is not None:
        emit(f"{'layer':>5}  " + "  ".join(f"{m:>9}" for m in spec.metrics))
        for layer, values in enumerate(per_layer, start=1):
            emit(f"{layer:>5}  " + "  ".join(f"{values[m]:9.4f}" for m in spec.metrics))
    emit(f"wrote {args.out} ({len(rows)} examples, {predictions.num_layers} exits)")
