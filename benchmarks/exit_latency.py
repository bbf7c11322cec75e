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

import numpy as np
import torch

from fastexit_bench import provenance
from fastexit_bench.data.spec import DATASETS
from fastexit_bench.data.tokenized import load_tokenized
from fastexit_bench.device import resolve_device
from fastexit_bench.evaluation import predict
from fastexit_bench.flops import measure_fvcore
from fastexit_bench.inference import EarlyExitEngine
from fastexit_bench.io import write_json
from fastexit_bench.latency import set_threads, time_call
from fastexit_bench.model.saved import load_trained
from fastexit_bench.policies import LayerOutputs, resolve_policy
from fastexit_bench.training.batches import TokenBatches


def timed_passes(engines: dict[str, EarlyExitEngine], batches: list, device: torch.device, repeats: int
                 ) -> dict[str, dict]:
    """Per-batch median times of every engine, interleaved: for each batch, each round times every engine
    once, so drifts of a shared machine hit all engines alike. Per-example latency median/p90 and
    throughput over the pass."""
    medians: dict[str, list[float]] = {name: [] for name in engines}
    sizes = [batch.inputs["input_ids"].shape[0] for batch in batches]
    for batch in batches:
        samples: dict[str, list[float]] = {name: [] for name in engines}
        for round_index in range(repeats):
            for name, engine in engines.items():
                timing = time_call(lambda e=engine, b=batch: e.run(**b.inputs), device,
                                   warmup=1 if round_index == 0 else 0, repeats=1)
                samples[name].append(timing.median_s)
        for name in engines:
            medians[name].append(float(np.median(samples[name])))
    stats = {}
    for name, values in medians.items():
        per_example = np.array(values) / np.array(sizes)
        total = float(sum(values))
        stats[name] = {"total_s": total, "per_example_median_ms": 1e3 * float(np.median(per_example)),
                       "per_example_p90_ms": 1e3 * float(np.percentile(per_example, 90)),
                       "throughput_per_s": sum(sizes) / total}
    return stats


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
    model, tokenizer, info = load_trained(args.model)
    model.to(device)
    spec = DATASETS.get(info["dataset"])
    split = args.split or spec.eval_splits[0]
    _, rows = load_tokenized(spec, split, tokenizer, mirror=args.mirror, max_examples=args.examples, seed=0,
                             max_length=info["max_length"], resources=None)
    source = TokenBatches(rows, tokenizer, device)
    saved = predict(model, source, 64)
    outputs = LayerOutputs(saved.logits, spec.task, saved.exit_scores, saved.labels)
    flops, lengths = measure_fvcore(model), source.lengths()
    full = flops.full_depth(model.num_layers, lengths).mean()
    policy, values = resolve_policy(args.policy), [float(v) for v in args.values.split(",")]
    baseline = EarlyExitEngine(model, resolve_policy("static"), model.num_layers, spec.task)
    results = []
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        order = np.argsort(lengths, kind="stable") if batch_size > 1 else np.arange(len(source))
        batches = [source.batch(torch.from_numpy(order[i:i + batch_size])) for i in range(0, len(order), batch_size)]
        engines = {"baseline": baseline, **{str(v): EarlyExitEngine(model, policy, v, spec.task) for v in values}}
        for value in values:
            check = engines[str(value)].run_source(source, batch_size, length_bucketed=batch_size > 1)
            if not np.array_equal(check.exit_layers, policy.exit_layers(outputs, value)):
                raise SystemExit("engine and sweep disagree; this benchmark would measure the wrong thing")
        stats = timed_passes(engines, batches, device, args.repeats)
        base = stats["baseline"]
        for value in values:
            exits = policy.exit_layers(outputs, value)
            timed = stats[str(value)]
            predicted = full / flops.per_example(exits, lengths, policy.reads).mean()
            realized = base["total_s"] / timed["total_s"]
            accuracy = float((saved.logits[exits - 1, np.arange(len(exits))].argmax(-1) == saved.labels).mean())
            results.append({"batch_size": batch_size, "policy": policy.name, "value": value,
                            "mean_exit_layer": float(exits.mean()), "accuracy": accuracy,
                            "predicted_speedup": float(predicted), "realized_speedup": realized,
                            "realized_over_predicted": realized / float(predicted),
                            "baseline": base, "early_exit": timed})
    print(f"{info['recipe']} {info['backbone']['requested']} on {spec.name}/{split}, {len(source)} examples, "
          f"{device}, {threads} threads, {args.repeats} repeats")
    print(f"{'batch':>5} {'policy':>8} {'value':>6} {'exit':>5} {'acc':>6} {'pred x':>7} {'real x':>7} "
          f"{'real/pred':>9} {'base ms/ex':>10} {'ee ms/ex':>9} {'ee p90':>7}")
    for r in results:
        print(f"{r['batch_size']:5d} {r['policy']:>8} {r['value']:6.2f} {r['mean_exit_layer']:5.2f} "
              f"{r['accuracy']:6.3f} {r['predicted_speedup']:7.2f} {r['realized_speedup']:7.2f} "
              f"{r['realized_over_predicted']:9.2f} {1e3 * r['baseline']['total_s'] / len(source):10.2f} "
              f"{1e3 * r['early_exit']['total_s'] / len(source):9.2f} {r['early_exit']['per_example_p90_ms']:7.2f}")
    if args.out:
        write_json(args.out, {
            "provenance": provenance.collect(config={k: str(v) for k, v in vars(args).items()}),
            "model": {"dir": str(args.model), "recipe": info["recipe"], "dataset": spec.name,
                      "trained_at_commit": info["provenance"]["git_commit"], "train_args": info["provenance"]["argv"]},
            "threads": threads, "device": str(device), "examples": len(source), "flops_source": flops.source,
            "goals": {"batch_1": ">= 0.9 realized/predicted", "batch_32": ">= 0.8 realized/predicted"},
            "rows": results,
        })
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
