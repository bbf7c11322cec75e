"""Sweep cost: a 13-threshold x 3-policy sweep on top of one evaluation pass, relative to that pass alone.

Goal (issue 4): (evaluation + sweep) / evaluation <= 1.1, i.e. sweeping needs no extra forward passes.
The evaluation pass runs every exit of a model over a split (as `fastexit-bench evaluate` does); the sweep
reads only its outputs. Medians over repeats in one process.

    python benchmarks/sweep_cost.py --mirror ../shared/data --out results/benchmarks/sweep_cost.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from fastexit_bench import provenance
from fastexit_bench.analysis.artifact import ArtifactMetadata, ExitArtifact
from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.analysis.sweep import sweep
from fastexit_bench.data.config import DataConfig
from fastexit_bench.data.spec import DATASETS
from fastexit_bench.data.tokenized import load_tokenized
from fastexit_bench.io import write_json
from fastexit_bench.locations import Locations, ResolvedBackbone
from fastexit_bench.models.saved import ModelSpec, build_model
from fastexit_bench.runtime.batches import TokenBatches
from fastexit_bench.runtime.predict import predict

POLICIES = ("entropy", "max_prob", "speed")
THRESHOLDS = 13


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="sst2")
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--mirror")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    run_provenance = provenance.collect(
        config={k: str(v) for k, v in vars(args).items()}
    )  # as the run starts
    spec = DATASETS.get(args.dataset)
    torch.manual_seed(0)
    model_spec = ModelSpec(args.backbone, "highway", spec.num_outputs)
    model, tokenizer, _ = build_model(model_spec)
    _, rows = load_tokenized(
        spec,
        spec.eval_splits[0],
        tokenizer,
        DataConfig(max_train=None, max_eval=None, max_length=128, seed=0),
        Locations(mirror=args.mirror),
    )
    source = TokenBatches(rows, tokenizer)
    policies = [resolve_policy(name) for name in POLICIES]
    eval_times, sweep_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        predictions = predict(model, source, spec.task, 128)
        eval_times.append(time.perf_counter() - start)
        art = ExitArtifact(
            predictions,
            np.asarray(rows["length"]),
            ArtifactMetadata(
                dataset=spec.name,
                split=spec.eval_splits[0],
                task=spec.task,
                metrics=list(spec.metrics),
                recipe="untrained-heads",
                backbone=ResolvedBackbone(args.backbone, args.backbone, "benchmark"),
                seed=0,
                architecture=model.architecture(),
            ),
        )
        grids = {p.name: list(np.linspace(0.0, 1.0, THRESHOLDS)) for p in policies}
        start = time.perf_counter()
        table = sweep(art, policies, grids)
        sweep_times.append(time.perf_counter() - start)
    evaluation, swept = statistics.median(eval_times), statistics.median(sweep_times)
    ratio = (evaluation + swept) / evaluation
    print(
        f"{spec.name}/{spec.eval_splits[0]} ({len(rows)} examples), {args.backbone}, "
        f"{torch.get_num_threads()} threads, {args.repeats} repeats"
    )
    print(f"{'evaluation pass s':>18} {'sweep s':>9} {'rows':>5} {'(eval+sweep)/eval':>18}")
    print(f"{evaluation:18.3f} {swept:9.4f} {len(table):5d} {ratio:18.4f}")
    if args.out:
        write_json(
            args.out,
            {
                "provenance": run_provenance,
                "goal": "(evaluation + 13x3 sweep) / evaluation <= 1.1",
                "examples": len(rows),
                "policies": list(POLICIES),
                "thresholds": THRESHOLDS,
                "rows": len(table),
                "evaluation_s": eval_times,
                "sweep_s": sweep_times,
                "ratio": ratio,
            },
        )
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
