"""Realized vs predicted early-exit speed-up for a trained model.

Predicted speed-up = full-depth FLOPs / expected FLOPs (fvcore counts, true lengths, heads on the way
included). Realized speed-up = wall-clock of the full-depth baseline / wall-clock of the early-exit
engine, both running the same pre-collated batches in this process (batch 32 batches are
length-bucketed). Each batch is timed ``--repeats`` times per engine, interleaved with the other
engines round by round; per-batch medians are summed. Goals (issue 5): realized / predicted >= 0.9 at batch 1 and >= 0.8 at batch 32 (CPU).

    python benchmarks/exit_latency.py results/models/... --mirror ../shared/data --policy speed \\
        --values 0.5,0.8,0.9 --out results/benchmarks/exit_latency_cpu.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench import provenance
from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.data.spec import DATASETS
from fastexit_bench.data.tokenized import load_tokenized
from fastexit_bench.device import resolve_device
from fastexit_bench.io import write_json
from fastexit_bench.models.saved import load_trained
from fastexit_bench.runtime.batches import TokenBatches
from fastexit_bench.runtime.latency import realized_vs_predicted, set_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--mirror")
    parser.add_argument("--split", help="default: the dataset's first eval split")
    parser.add_argument("--examples", type=int, default=320)
    parser.add_argument("--policy", default="speed")
    parser.add_argument("--values", default="0.5,0.8,0.9")
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = resolve_device(args.device)
    threads = set_threads(args.threads)
    model, tokenizer, record = load_trained(args.model)
    model.to(device)
    spec = DATASETS.get(record.dataset)
    split = args.split or spec.eval_splits[0]
    _, rows = load_tokenized(spec, split, tokenizer, mirror=args.mirror, max_examples=args.examples, seed=0,
                             max_length=record.max_length, resources=None)
    source = TokenBatches(rows, tokenizer, device)
    policy = resolve_policy(args.policy)
    points = [(f"{policy.name}={v}", policy, float(v)) for v in args.values.split(",")]
    results = realized_vs_predicted(model, source, spec.task, points, [int(b) for b in args.batch_sizes.split(",")],
                                    args.repeats, device)
    print(f"{record.recipe} {record.backbone['requested']} on {spec.name}/{split}, {len(source)} examples, "
          f"{device}, {threads} threads, {args.repeats} repeats")
    print(f"{'batch':>5} {'setting':>12} {'exit':>5} {'pred x':>7} {'real x':>7} {'real/pred':>9} "
          f"{'full ms/ex':>10} {'ee ms/ex':>9} {'ee p90':>7}")
    for r in results:
        print(f"{r['batch_size']:5d} {r['setting']:>12} {r['mean_exit_layer']:5.2f} {r['predicted_speedup']:7.2f} "
              f"{r['realized_speedup']:7.2f} {r['realized_over_predicted']:9.2f} "
              f"{1e3 * r['full_depth']['total_s'] / len(source):10.2f} "
              f"{1e3 * r['early_exit']['total_s'] / len(source):9.2f} {r['early_exit']['per_example_p90_ms']:7.2f}")
    if args.out:
        write_json(args.out, {
            "provenance": provenance.collect(config={k: str(v) for k, v in vars(args).items()}),
            "model": {"dir": str(args.model), "recipe": record.recipe, "dataset": spec.name,
                      "trained_at_commit": record.provenance["git_commit"], "train_args": record.provenance["argv"]},
            "threads": threads, "device": str(device), "examples": len(source), "flops_source": "fvcore",
            "goals": {"batch_1": ">= 0.9 realized/predicted", "batch_32": ">= 0.8 realized/predicted"},
            "rows": results,
        })
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
