"""``fastexit-bench serve-bench``: early exit under load, three schedulers under MLPerf-style scenarios."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench.cli.common import (
    add_execution_args,
    add_location_args,
    add_overwrite_arg,
    add_threads_arg,
    checked,
    comma_list,
    config_of,
    emit,
    execution_config,
    finite_float,
    from_args,
    locations,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    subcommand,
)
from fastexit_bench.serving.record import CLOCK_KINDS, SCENARIOS, SCHEDULERS, ServingSettings


def _names_from(known: tuple[str, ...]):
    return comma_list(checked(str.strip, known.__contains__, "a name"), f"names from {', '.join(known)}")


def add_parser(commands) -> None:
    defaults = ServingSettings()
    parser = subcommand(
        commands,
        "serve-bench",
        "serve a model under load: full-depth, compaction and the layer-pool schedulers (plain, adaptive, deadline)",
        "  fastexit-bench serve-bench results/m/sst2/deebert/seed0 --policy entropy --value 0.3 \\\n"
        "      --mirror ../shared/data --bound-ms 50 --out serving.json\n"
        "  fastexit-bench serve-bench results/reference/sst2_full/exits/sst2.deebert.seed0.validation.npz \\\n"
        "      --policy entropy --value 0.3 --mirror ../shared/data --out replayed.json   # weights gone\n"
        "SingleStream (p50/p90/p99 latency), Offline (throughput) and Server (the largest Poisson rate whose p99\n"
        "stays under --bound-ms), Overload (--overload x full depth's Server rate: p99, accuracy, exits a deadline\n"
        "forced). Every scheduler's exits are checked against the policy's before timing.\n",
        run_serve_bench,
    )
    parser.add_argument(
        "model",
        type=Path,
        help="model folder written by `fastexit-bench train`, or an evaluation artefact (.npz) whose weights are "
        "gone: a model of its architecture (pretrained backbone, fresh heads) is served with its exits and "
        "answers replayed from the artefact, on its own split",
    )
    parser.add_argument(
        "--policy", required=True, help="exit policy: a built-in name or package.module:Class"
    )
    parser.add_argument(
        "--value", type=finite_float, required=True, help="the policy's parameter (e.g. speed 0.5)"
    )
    parser.add_argument("--split", default=defaults.split, help="split whose texts the queries ask about")
    parser.add_argument(
        "--examples", type=positive_int, default=defaults.examples, help="seeded subsample of the split"
    )
    parser.add_argument(
        "--scenarios",
        type=_names_from(SCENARIOS),
        default=list(defaults.scenarios),
        help="comma-separated: " + ", ".join(SCENARIOS),
    )
    parser.add_argument(
        "--schedulers",
        type=_names_from(SCHEDULERS),
        default=list(defaults.schedulers),
        help="comma-separated: " + ", ".join(SCHEDULERS),
    )
    parser.add_argument(
        "--queries", type=positive_int, default=defaults.queries, help="queries per measurement"
    )
    parser.add_argument(
        "--max-batch", type=positive_int, default=defaults.max_batch, help="largest batch (every scheduler)"
    )
    parser.add_argument(
        "--max-wait-ms",
        type=nonnegative_float,
        default=defaults.max_wait_ms,
        help="longest a dynamic batcher waits for a fuller batch (0: launch when idle)",
    )
    parser.add_argument(
        "--bound-ms", type=positive_float, default=defaults.bound_ms, help="Server scenario's p99 bound"
    )
    parser.add_argument(
        "--deadline-ms",
        type=positive_float,
        default=defaults.deadline_ms,
        help="latency layer-pool-deadline forces exits to keep (None: --bound-ms)",
    )
    parser.add_argument(
        "--overload",
        type=positive_float,
        default=defaults.overload,
        help="the Overload scenario's rate as a multiple of full depth's Server rate",
    )
    parser.add_argument(
        "--clock",
        choices=CLOCK_KINDS,
        default=defaults.clock,
        help="time read on the wall clock, or on a virtual one that charges each model call its measured cost "
        "(compares schedulers without a noisy machine's hiccups; docs/serving.md)",
    )
    parser.add_argument(
        "--search-steps",
        type=positive_int,
        default=defaults.search_steps,
        help="bisection steps of the Server rate search",
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=defaults.repeats,
        help="SingleStream (pooled), Server and Overload runs per scheduler, in turns; the median is reported",
    )
    parser.add_argument(
        "--warmup", type=nonnegative_int, default=defaults.warmup, help="untimed queries first"
    )
    parser.add_argument(
        "--seed", type=nonnegative_int, default=defaults.seed, help="query order and arrivals"
    )
    add_threads_arg(parser)
    parser.add_argument(
        "--out", type=Path, required=True, help="JSON to write; its plot goes beside it (.png, .pdf)"
    )
    add_overwrite_arg(parser)
    add_location_args(parser)
    add_execution_args(parser, inference=True)


def run_serve_bench(args: argparse.Namespace) -> None:
    from fastexit_bench.io import check_output_file, file_set
    from fastexit_bench.reporting.plots import FIGURE_SUFFIXES, serving_latency
    from fastexit_bench.runtime.trained import model_files
    from fastexit_bench.serving.bench import is_artifact, serve_bench

    for path, suffix in ((args.out, ".json"), *((args.out.with_suffix(s), s) for s in FIGURE_SUFFIXES)):
        inputs = [args.model] if is_artifact(args.model) else model_files(args.model)
        check_output_file(path, inputs=inputs, overwrite=args.overwrite, suffix=suffix)
    settings = from_args(
        ServingSettings, args, scenarios=tuple(args.scenarios), schedulers=tuple(args.schedulers)
    )
    serving = serve_bench(
        args.model,
        args.policy,
        args.value,
        settings,
        threads=args.threads,
        execution=execution_config(args),
        where=locations(args),
        config=config_of(args),
        log=emit,
    )
    with file_set(args.out) as files:  # the record and its plot, published together
        serving_latency(serving, files.path(args.out).with_suffix(""))
        written = files.publish(serving.to_dict())
    for goal, ratio in serving.goals().items():
        emit(f"{goal}: {ratio:.2f}")
    emit("wrote " + " ".join(str(p) for p in written))
