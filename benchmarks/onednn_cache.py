"""oneDNN's kernel cache under early exit: Offline throughput of each scheduler with the cache at each size.

    python benchmarks/onednn_cache.py MODEL SELECTION --mirror ../shared/data \\
        --out results/benchmarks/onednn_cache/onednn_cache_cpu_sst2_fastbert.json

In bf16 on a CPU every matrix product runs a oneDNN kernel built for its shape and kept in a cache of
``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` kernels (oneDNN's default 1024; the suite sets
``execution.ONEDNN_PRIMITIVE_CACHE``). Full depth runs a batch's layers on one shape; early exit on as many as
the rows left times the tokens kept, and a server meets new batch compositions all the time. Each capacity is
measured in a process of its own (the cache is sized when its first kernel is built): every scheduler serves
``--orders`` query orders it has not met (every query issued at once, as in Offline), then the same orders
again, whose kernels a large enough cache still holds. MODEL is a model folder or an evaluation artefact
(replayed), SELECTION its sweep's OUT.selection.csv (the paper policy's dev <= 1 point value is served).
Prints the table; writes the JSON with provenance.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from serving import add_served_model, open_served, operating_point, run_of, scheduler_for, served_header

from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.execution import ONEDNN_PRIMITIVE_CACHE, running
from fastexit_bench.io import write_json
from fastexit_bench.runtime.latency import set_threads
from fastexit_bench.serving.bench import query_examples
from fastexit_bench.serving.loadgen import serve
from fastexit_bench.serving.record import ServingSettings

SERVED = ("full-depth", "compaction", "layer-pool")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """In this process (its cache already sized): the served run, and each scheduler's Offline throughput
    per order, first met and met again."""
    set_threads(args.threads)
    policy_name, value = operating_point(args.selection, args.target)
    policy, opened = resolve_policy(policy_name), open_served(args.model, args.mirror)
    settings = ServingSettings()
    orders = [query_examples(len(opened.source), settings.queries, seed) for seed in range(args.orders)]
    run_record = run_of(opened)
    throughput: dict[str, dict[str, list[float]]] = {}
    model = opened.model
    with (
        running(model.config, opened.execution, opened.device, inference=model.layers),
        torch.inference_mode(),
    ):
        for name in SERVED:
            passes = {"first": [], "again": []}
            for throughputs in passes.values():
                for examples in orders:
                    scheduler = scheduler_for(opened, name, policy, value, examples)
                    served = serve(scheduler, len(examples), np.zeros(len(examples)))
                    throughputs.append(served.throughput_per_s())
            throughput[name] = passes
    return {
        "model": {"dataset": run_record.dataset, "recipe": run_record.recipe, "seed": run_record.seed},
        "throughput_per_s": throughput,
    }


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_served_model(parser)
    parser.add_argument("--capacities", default=f"1024,{ONEDNN_PRIMITIVE_CACHE}", help="comma-separated")
    parser.add_argument("--orders", type=int, default=4, help="query orders served, then served again")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one capacity, JSON out
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args)))
        return
    runs = {}
    for capacity in [int(c) for c in args.capacities.split(",")]:
        env = {**os.environ, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": str(capacity)}
        worker = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--worker"]
        done = subprocess.run(worker, env=env, capture_output=True, text=True, check=True)
        runs[capacity] = json.loads(done.stdout.strip().splitlines()[-1])
    by_capacity = {capacity: run["throughput_per_s"] for capacity, run in runs.items()}
    largest = max(by_capacity)
    print(f"Offline queries/s, median over {args.orders} orders; x: against the largest cache ({largest})")
    print("| scheduler | cache | orders met first | met again |")
    print("|---|---|---|---|")
    for name in SERVED:
        top = np.median(by_capacity[largest][name]["again"])
        for capacity, measured in by_capacity.items():
            first, again = (float(np.median(measured[name][kind])) for kind in ("first", "again"))
            print(f"| {name} | {capacity} | {first:.0f} | {again:.0f} ({again / top:.2f}x) |")
    if args.out:
        policy_name, value = operating_point(args.selection, args.target)
        write_json(
            args.out,
            {
                **served_header(
                    args, SimpleNamespace(**runs[largest]["model"]), policy_name, value, args.threads
                ),
                "throughput_per_s": {str(c): m for c, m in by_capacity.items()},
            },
        )
        print(f"wrote {args.out}")


if __name__ == "__main__":
    run()
