"""``fastexit-bench latency``: measured vs FLOPs-predicted speed-up of a model's paper operating points."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench.cli.common import (
    add_location_args,
    add_operating_point_args,
    config_of,
    emit,
    float_list,
    subcommand,
    table_spec,
)


def add_parser(commands) -> None:
    parser = subcommand(
        commands, "latency", "time early exit against full depth at the operating points of a paper table",
        "  fastexit-bench latency results/m/sst2/deebert/seed0 --dev exits/sst2.deebert.seed0.validation.npz \\\n"
        "      --max-drop 0,1,2 --mirror ../shared/data --out latency.json\n"
        "  fastexit-bench latency m/ag_news/fastbert/seed0 --dev dev.npz --split test --values speed=0.1,0.5,0.8 ...\n"
        "Operating points are those of `report`'s paper table: fixed --values of the recipe's exit policy, or\n"
        "the fastest values within --max-drop points of full depth on the --dev artefact. CUDA events on a GPU,\n"
        "perf_counter on the CPU; quote the ratios, not the absolute times of a shared machine.\n",
        run_latency,
    )
    parser.add_argument("model", type=Path, help="model folder written by `fastexit-bench train`")
    parser.add_argument("--dev", type=Path, required=True, help="dev artefact from `evaluate` (chooses values)")
    parser.add_argument("--split", help="split to time on (default: the dev artefact's split)")
    add_operating_point_args(parser)
    parser.add_argument("--examples", type=int, default=256, help="seeded subsample of the split to time")
    parser.add_argument("--batch-sizes", type=lambda t: [int(v) for v in float_list(t)], default=[1, 32])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per batch (median taken)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, required=True, help="JSON to write")
    add_location_args(parser)


def run_latency(args: argparse.Namespace) -> None:
    from fastexit_bench import provenance
    from fastexit_bench.data.spec import DATASETS
    from fastexit_bench.data.tokenized import load_tokenized
    from fastexit_bench.device import resolve_device
    from fastexit_bench.analysis.artifact import ExitArtifact
    from fastexit_bench.io import write_json
    from fastexit_bench.runtime.latency import realized_vs_predicted, set_threads
    from fastexit_bench.models.saved import load_trained
    from fastexit_bench.reporting.paper import settings
    from fastexit_bench.analysis.policies import resolve_policy
    from fastexit_bench.runtime.batches import TokenBatches

    device = resolve_device(args.device)
    threads = set_threads(args.threads)
    model, tokenizer, info = load_trained(args.model, args.resources)
    dev = ExitArtifact.load(args.dev)
    spec = table_spec(args)
    points = [(s.label, resolve_policy(s.policy), s.value) for s in settings(info["recipe"], dev, spec)
              if s.policy != "static"]
    record = {"provenance": provenance.collect(config=config_of(args)), "dataset": info["dataset"],
              "recipe": info["recipe"], "seed": info["seed"], "threads": threads, "device": str(device), "rows": []}
    if points:
        dataset = DATASETS.get(info["dataset"])
        split = args.split or dev.metadata["split"]
        _, rows = load_tokenized(dataset, split, tokenizer, mirror=args.mirror, max_examples=args.examples,
                                 seed=info["seed"], max_length=info["max_length"], resources=args.resources)
        record.update(split=split, examples=len(rows), repeats=args.repeats,
                      rows=realized_vs_predicted(model.to(device), TokenBatches(rows, tokenizer, device),
                                                 dataset.task, points, args.batch_sizes, args.repeats, device))
    write_json(args.out, record)
    emit(f"{'batch':>5}  {'setting':<32} {'exit':>5} {'pred x':>7} {'real x':>7} {'real/pred':>9}")
    for row in record["rows"]:
        emit(f"{row['batch_size']:5d}  {row['setting']:<32} {row['mean_exit_layer']:5.2f} "
             f"{row['predicted_speedup']:7.2f} {row['realized_speedup']:7.2f} {row['realized_over_predicted']:9.2f}")
    emit(f"wrote {args.out}" + ("" if points else " (no early-exit operating points: nothing to time)"))
