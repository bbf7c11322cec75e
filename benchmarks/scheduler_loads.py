"""Schedulers side by side at fixed loads: p99 latency of each at the same Poisson rates, repeated and
interleaved (issue "Guarantees", item 4: an adaptive pool should reach the better of compaction and layer-pool
at every load).

    python benchmarks/scheduler_loads.py MODEL SELECTION --mirror ../shared/data --rates 100,150,200,250 \\
        --out results/benchmarks/scheduler_loads/loads_cpu_sst2_deebert.json

MODEL is a folder from `fastexit-bench train`, or an evaluation artefact (.npz) whose exits and answers are
replayed (`serve-bench` on an artefact), SELECTION its sweep's OUT.selection.csv (the paper policy's
dev <= 1 point value is served). The Server scenario's rate search rests each scheduler's number on one
bisection, where one noisy p99 near the bound moves the answer by a step; here every scheduler serves the
same arrivals at each rate, ``--repeats`` times in rotation (scheduler by scheduler within a round), so a
drifting shared machine hits them alike. The table gives each scheduler's median p99 per rate and its ratio
to the better of compaction and layer-pool there. Prints the table; writes the JSON with provenance.
``--clock virtual`` serves on the virtual clock (``serving.clocks``): every model call charged its measured
cost, so that what is compared is the scheduling, not the machine's hiccups.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from serving import add_served_model, open_served, operating_point, run_of, scheduler_for, served_header

from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.execution import running
from fastexit_bench.io import write_json
from fastexit_bench.runtime.latency import set_threads
from fastexit_bench.serving.bench import query_examples
from fastexit_bench.serving.clocks import make_clock
from fastexit_bench.serving.loadgen import poisson_arrivals, serve
from fastexit_bench.serving.record import CLOCK_KINDS, ServingSettings

RIVALS = ("compaction", "layer-pool")


def labelled(names: list[str]) -> list[tuple[str, str]]:
    """(label, scheduler) per name; a scheduler named twice is a control, labelled ``NAME #2``: its gap to
    the first is what noise alone makes of one scheduler."""
    return [
        (name + (f" #{names[:i].count(name) + 1}" if name in names[:i] else ""), name)
        for i, name in enumerate(names)
    ]


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_served_model(parser)
    parser.add_argument("--rates", required=True, help="comma-separated Poisson rates (queries/s)")
    parser.add_argument(
        "--schedulers",
        default="compaction,layer-pool,layer-pool-adaptive",
        help="comma-separated; one named twice is served twice (a control for noise)",
    )
    parser.add_argument("--queries", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=CLOCK_KINDS, default=ServingSettings.clock)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    settings = ServingSettings(queries=args.queries, clock=args.clock)
    policy_name, value = operating_point(args.selection, args.target)
    policy = resolve_policy(policy_name)
    opened = open_served(args.model, args.mirror)
    schedulers, rates = labelled(args.schedulers.split(",")), [float(r) for r in args.rates.split(",")]
    names = [label for label, _ in schedulers]
    examples = query_examples(len(opened.source), args.queries, settings.seed)
    clock = make_clock(settings.clock)

    def p99_ms(name: str, rate: float, seed: int) -> float:
        scheduler = scheduler_for(opened, name, policy, value, examples, clock)
        served = serve(scheduler, args.queries, poisson_arrivals(args.queries, rate, seed), clock)
        return served.latency_ms()["p99_ms"]

    model = opened.model
    with (
        running(model.config, opened.execution, opened.device, inference=model.layers),
        torch.inference_mode(),
    ):
        for _, name in schedulers:  # warm-up: each scheduler's first calls
            p99_ms(name, rates[0], settings.seed)
        p99s = {label: {rate: [] for rate in rates} for label in names}
        for repeat in range(args.repeats):
            for rate in rates:
                for label, name in schedulers:
                    p99s[label][rate].append(p99_ms(name, rate, settings.seed + repeat))
                    print(
                        f"repeat {repeat} {rate:g} q/s {label}: p99 {p99s[label][rate][-1]:.1f} ms",
                        flush=True,
                    )
    rows = []
    for rate in rates:
        medians = {name: float(np.median(p99s[name][rate])) for name in names}
        better = min(medians[r] for r in RIVALS if r in medians) if set(RIVALS) <= set(names) else None
        for name in names:
            rows.append(
                {
                    "rate_per_s": rate,
                    "scheduler": name,
                    "p99_ms": p99s[name][rate],
                    "median_p99_ms": medians[name],
                    "to_better_rival": medians[name] / better if better else None,
                }
            )
    record = run_of(opened)
    print(
        f"{record.dataset} {record.recipe} seed {record.seed}, {policy.name} = {value:.3g}, {args.queries} queries "
        f"per run, {args.repeats} repeats, {threads} threads, {args.clock} clock; p99 ms (median of repeats, "
        "their range) and its ratio to the better of compaction and layer-pool at that rate"
    )
    print("| rate q/s | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for rate in rates:
        cells = [row for row in rows if row["rate_per_s"] == rate]
        shown = [
            f"{row['median_p99_ms']:.1f} ({min(row['p99_ms']):.0f}-{max(row['p99_ms']):.0f})"
            + (f" {row['to_better_rival']:.2f}x" if row["to_better_rival"] is not None else "")
            for row in cells
        ]
        print(f"| {rate:g} | " + " | ".join(shown) + " |")
    write_json(
        args.out,
        {
            **served_header(args, record, policy.name, value, threads),
            "rows": rows,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run()
