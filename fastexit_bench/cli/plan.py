"""``fastexit-bench plan``: what a workflow experiment will run and cost, before any job starts."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench.cli.common import add_resources_arg, emit, positive_float, subcommand
from fastexit_bench.experiments.plan import SUSTAINED_TFLOPS
from fastexit_bench.experiments.settings import SCHEMA


def add_parser(commands) -> None:
    parser = subcommand(
        commands,
        "plan",
        "jobs, training examples x epochs, FLOPs and GPU-hours of a workflow experiment (e.g. a paper table)",
        "  fastexit-bench plan fastbert_table2\n"
        "  fastexit-bench plan deebert_table1 --mirror none --tflops 300    # hub data, an H100-class rate\n",
        run_plan,
    )
    parser.add_argument("experiment", help="experiment name in the config (e.g. fastbert_table2)")
    parser.add_argument(
        "--config", type=Path, default=Path("config/config.yaml"), help="workflow config file"
    )
    parser.add_argument("--schema", type=Path, default=SCHEMA, help="workflow config schema")
    parser.add_argument(
        "--mirror",
        default=None,
        help="dataset mirror folder (default: the config's data_mirror; 'none': hub copies only)",
    )
    parser.add_argument(
        "--tflops",
        type=positive_float,
        default=SUSTAINED_TFLOPS,
        help="sustained training TFLOP/s of one GPU, for the GPU-hours estimate",
    )
    parser.add_argument(
        "--rates",
        type=Path,
        default=Path("results/benchmarks/train_cost_cpu.json"),
        help="training rates measured on a CPU by benchmarks/train_cost.py, for the CPU-hours column",
    )
    add_resources_arg(parser)


def run_plan(args: argparse.Namespace) -> None:
    from fastexit_bench.experiments.plan import CpuRates, plan
    from fastexit_bench.experiments.preflight import preflight
    from fastexit_bench.experiments.settings import experiment_settings, load_config

    config = load_config(args.config, args.schema)
    mirror = args.mirror if args.mirror is not None else config["data_mirror"]
    mirror = None if mirror == "none" else mirror
    settings = experiment_settings(config, args.experiment)
    emit(plan(settings, mirror, args.resources, args.tflops, CpuRates.read(args.rates)).markdown())
    for problem in preflight(settings.datasets, settings.backbones(), mirror):
        emit(f"cannot run here: {problem}")
