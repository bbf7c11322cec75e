"""``fastexit-bench latency``: measured vs FLOPs-predicted speed-up of a model's paper operating points."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench.cli.common import (
    add_execution_args,
    add_location_args,
    add_overwrite_arg,
    add_threads_arg,
    config_of,
    emit,
    execution_config,
    locations,
    positive_int,
    positive_ints,
    subcommand,
)
from fastexit_bench.runtime.config import LatencyConfig


def add_parser(commands) -> None:
    defaults = LatencyConfig()
    parser = subcommand(
        commands,
        "latency",
        "time early exit against full depth at the operating points of a paper table",
        "  fastexit-bench latency results/m/sst2/deebert/seed0 --selection sweeps/sst2.deebert.seed0.selection.csv \\\n"
        "      --split validation --mirror ../shared/data --out latency.json\n"
        "The operating points are those `sweep` chose (its OUT.selection.csv) for the recipe's paper policy,\n"
        "the same rows `report` shows in the paper table. CUDA events on a GPU, perf_counter on the CPU;\n"
        "quote the ratios, not the absolute times of a shared machine.\n",
        run_latency,
    )
    parser.add_argument("model", type=Path, help="model folder written by `fastexit-bench train`")
    parser.add_argument(
        "--selection", type=Path, required=True, help="the model's OUT.selection.csv from `sweep`"
    )
    parser.add_argument("--split", help="split to time on (None: the split the selection reports)")
    parser.add_argument(
        "--examples",
        type=positive_int,
        default=defaults.examples,
        help="seeded subsample of the split to time",
    )
    parser.add_argument(
        "--batch-sizes", type=positive_ints, default=list(defaults.batch_sizes), help="batch sizes to time"
    )
    parser.add_argument(
        "--repeats", type=positive_int, default=defaults.repeats, help="timed rounds per batch (median taken)"
    )
    add_threads_arg(parser)
    parser.add_argument("--out", type=Path, required=True, help="JSON to write")
    add_overwrite_arg(parser)
    add_location_args(parser)
    add_execution_args(parser, inference=True)


def run_latency(args: argparse.Namespace) -> None:
    from fastexit_bench.io import check_output_file, write_json
    from fastexit_bench.models.saved import model_identity
    from fastexit_bench.reporting.paper import timed_points
    from fastexit_bench.runtime.latency import measure_latency
    from fastexit_bench.runtime.trained import model_files

    check_output_file(
        args.out, inputs=[*model_files(args.model), args.selection], overwrite=args.overwrite, suffix=".json"
    )
    split, points = timed_points(args.selection, model_identity(args.model))
    timing = measure_latency(
        args.model,
        points,
        args.split or split,
        LatencyConfig(args.examples, tuple(args.batch_sizes), args.repeats),
        threads=args.threads,
        execution=execution_config(args),
        where=locations(args),
        config=config_of(args),
    )
    write_json(args.out, timing.to_dict())
    emit(f"{'batch':>5}  {'setting':<32} {'exit':>5} {'pred x':>7} {'real x':>7} {'real/pred':>9}")
    for row in timing.rows:
        emit(
            f"{row.batch_size:5d}  {row.setting:<32} {row.mean_exit_layer:5.2f} "
            f"{row.predicted_speedup:7.2f} {row.realized_speedup:7.2f} {row.realized_over_predicted:9.2f}"
        )
    emit(f"wrote {args.out}" + ("" if points else " (no early-exit operating points: nothing to time)"))
