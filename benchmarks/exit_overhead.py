"""Where a never-exiting query's extra time goes: at batch 1, on the examples a policy keeps to the last layer,
the full-depth model against the same query through each piece early exit adds (issue "Guarantees", item 4).

    python benchmarks/exit_overhead.py MODEL SELECTION --mirror ../shared/data \\
        --out results/benchmarks/exit_overhead/exit_overhead_cpu_sst2_deebert.json

MODEL is a folder from `fastexit-bench train`, SELECTION its sweep's OUT.selection.csv (the paper policy's
dev <= 1 point value is served). Every variant runs one query from its token ids to its answer on the host:

- ``full depth``: the full-depth scheduler (embeddings, every layer, one classifier);
- ``+ every head``: the same layers with the policy's per-layer head or scorer, nothing read back;
- ``+ host copy``: each head's output copied to the host as it comes (what a decision needs);
- ``+ exit decision``: the compaction scheduler (the policy asked after every layer);
- ``layer-pool`` / ``layer-pool-adaptive``: the serving schedulers, one layer per step with pool bookkeeping.

Each example is timed ``--repeats`` times per variant, the variants interleaved round by round so a shared
machine's drift hits them alike; the table gives the median over examples of each variant's per-example
median, its ratio to full depth and the FLOPs ratio (heads included) that the ratio would be without any
overhead, and the weights one head reads beside one layer's (at batch 1 a layer is bound by reading its weights, so
time follows bytes more than FLOPs). Prints the table; writes the JSON with provenance.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from serving import add_served_model, operating_point, scheduler_for, served_header

from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.io import write_json
from fastexit_bench.locations import Locations
from fastexit_bench.models.tracing import measure_fvcore
from fastexit_bench.runtime.engine import run_step
from fastexit_bench.runtime.latency import set_threads
from fastexit_bench.runtime.predict import predict
from fastexit_bench.runtime.trained import open_trained


def layers_with_heads(trained, reads: str, host_copy: bool) -> Callable[[int], None]:
    """One query through every layer and the policy's head after each (``host_copy``: read each back)."""
    model = trained.runner

    def run(example: int) -> None:
        batch = trained.source.batch(torch.tensor([example]))
        hidden, additive = model.embed(**batch.inputs)
        mask = batch.inputs["attention_mask"].bool()
        for k in range(model.num_layers):
            hidden, logits, _ = run_step(model, reads, k, hidden, additive, mask)
            if host_copy and logits is not None:
                logits.float().cpu().numpy()
        if logits is None:  # a policy reading scores or nothing: the exit head at the end
            model.head_logits(model.num_layers - 1, hidden, mask).float().cpu().numpy()

    return torch.inference_mode()(run)


def served(trained, name: str, policy, value: float) -> Callable[[int], None]:
    """One query through scheduler ``name`` (made once, as a server makes it, with serving's batch limit) until
    it is answered."""
    scheduler = scheduler_for(trained, name, policy, value, np.arange(len(trained.source)))

    @torch.inference_mode()
    def run(example: int) -> None:
        scheduler.admit(example, 0.0)
        while not scheduler.step():
            pass

    return run


def timed(variants: dict[str, Callable[[int], None]], examples: np.ndarray, repeats: int) -> dict[str, list]:
    """Per example, each variant's median over ``repeats`` interleaved rounds (one untimed round first)."""
    medians: dict[str, list[float]] = {name: [] for name in variants}
    for example in examples:
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for round_index in range(repeats + 1):
            for name, run in variants.items():
                start = time.perf_counter()
                run(int(example))
                if round_index:
                    samples[name].append(time.perf_counter() - start)
        for name in variants:
            medians[name].append(statistics.median(samples[name]))
    return medians


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_served_model(parser)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--examples", type=int, default=64, help="never-exiting examples timed")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    policy_name, value = operating_point(args.selection, args.target)
    policy = resolve_policy(policy_name)
    trained = open_trained(args.model, args.split, where=Locations(mirror=args.mirror))
    model, task = trained.model, trained.dataset.task
    outputs = predict(trained.runner, trained.source, task)
    policy.fit(outputs)
    exits = policy.exit_layers(outputs, value)
    never = np.flatnonzero(exits == model.num_layers)
    chosen = np.random.default_rng(0).permutation(never)[: args.examples]
    lengths = trained.source.lengths()[chosen]
    flops = measure_fvcore(model)
    head_weights = sum(p.numel() for p in model.heads[0].parameters()) / sum(
        p.numel() for p in model.layers[0].parameters()
    )  # at batch 1 a layer's time follows the weights it reads more than its FLOPs
    flops_ratio = 1 / flops.speedup(
        np.full(len(chosen), model.num_layers), lengths, policy.reads, model.num_layers
    )
    variants = {
        "full depth": served(trained, "full-depth", policy, value),
        "+ every head": layers_with_heads(trained, policy.reads, host_copy=False),
        "+ host copy": layers_with_heads(trained, policy.reads, host_copy=True),
        "+ exit decision": served(trained, "compaction", policy, value),
        "layer-pool": served(trained, "layer-pool", policy, value),
        "layer-pool-adaptive": served(trained, "layer-pool-adaptive", policy, value),
    }
    medians = timed(variants, chosen, args.repeats)
    full = np.array(medians["full depth"])
    rows = []
    for name, values in medians.items():
        values = np.array(values)
        rows.append(
            {
                "variant": name,
                "median_ms": 1e3 * float(np.median(values)),
                "ratio_to_full_depth": float(np.median(values / full)),
                "p90_ratio": float(np.percentile(values / full, 90)),
            }
        )
    record = trained.record
    print(
        f"{record.dataset} {record.recipe} seed {record.seed}, {policy.name} = {value:.3g}: {len(chosen)} of "
        f"{len(never)} never-exiting {args.split} examples (mean {lengths.mean():.1f} tokens), batch 1, "
        f"{threads} threads, {args.repeats} rounds; FLOPs with every head = {flops_ratio:.3f}x full depth; "
        f"one head's weights = {head_weights:.3f}x one layer's"
    )
    print("| variant | median ms | x full depth (median over examples) | p90 over examples |")
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['variant']} | {row['median_ms']:.2f} | {row['ratio_to_full_depth']:.3f} "
            f"| {row['p90_ratio']:.3f} |"
        )
    write_json(
        args.out,
        {
            **served_header(args, record, policy.name, value, threads),
            "examples": len(chosen),
            "never_exiting": len(never),
            "mean_tokens": float(lengths.mean()),
            "flops_ratio_every_head": flops_ratio,
            "head_weights_per_layer_weights": head_weights,
            "rows": rows,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run()
