"""Realized vs predicted early-exit speed-up for a trained model, or replayed for a model of its architecture.

Predicted speed-up = full-depth FLOPs / expected FLOPs (fvcore counts, true lengths, heads on the way
included). Realized speed-up = wall-clock of the full-depth baseline / wall-clock of the early-exit
engine, both running the same pre-collated batches in this process (batch 32 batches are
length-bucketed). Each batch is timed ``--repeats`` times per engine, interleaved with the other
engines round by round; per-batch medians are summed. Goals (issue 5): realized / predicted >= 0.9 at batch 1 and >= 0.8 at batch 32 (CPU).

    python benchmarks/exit_latency.py results/models/... --mirror ../shared/data --policy speed \\
        --values 0.5,0.8,0.9 --out results/benchmarks/exit_latency_cpu.json

Replay (where the trained weights cannot travel, e.g. to a GPU machine without network): ``--replay
ARTIFACT --backbone FOLDER`` builds the artefact's model on a backbone of the same architecture (random
weights) with fresh heads, and the engine exits where the artefact's recorded outputs say (compute does
not depend on weight values). The rows are the artefact's own examples: from ``--tokenized`` (written by
``benchmarks/gpu/bundle.py``) or the mirror, checked against the artefact's token lengths. Results say
``"exits": "replayed"``.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from pathlib import Path

import datasets
import numpy as np
from gpu.kit import bundled_rows

from fastexit_bench import provenance
from fastexit_bench.analysis.artifact import ExitArtifact
from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.data.config import DataConfig
from fastexit_bench.data.spec import DATASETS
from fastexit_bench.data.tokenized import load_tokenized
from fastexit_bench.device import resolve_device
from fastexit_bench.execution import ExecutionConfig, resolve
from fastexit_bench.io import write_json
from fastexit_bench.locations import Locations
from fastexit_bench.models.saved import ModelSpec, build_model, load_trained
from fastexit_bench.runtime.batches import TokenBatches
from fastexit_bench.runtime.latency import realized_vs_predicted, set_threads
from fastexit_bench.runtime.trained import artifact_rows


def tokenized_rows(tokenized: Path | None, backbone: str, dataset: str, split: str, load) -> datasets.Dataset:
    """The bundle's pre-tokenized rows when ``tokenized`` is given, else ``load()``'s."""
    return bundled_rows(tokenized, backbone, dataset, split) if tokenized is not None else load()


def replayed_model(args: argparse.Namespace, device):
    """(model, dataset spec, source, recorded outputs, description) for ``--replay``: the artefact's model on
    ``--backbone`` and the artefact's rows."""
    artifact = ExitArtifact.load(args.replay)
    meta = artifact.metadata
    model, tokenizer, _ = build_model(replace(ModelSpec(**meta.model), backbone=str(args.backbone)))
    spec = DATASETS.get(meta.dataset)
    rows = tokenized_rows(
        args.tokenized,
        meta.backbone_name,
        meta.dataset,
        meta.split,
        lambda: artifact_rows(artifact, tokenizer, Locations(mirror=args.mirror)),
    )
    source = TokenBatches(rows, tokenizer, device)
    if not np.array_equal(source.lengths(), artifact.lengths):
        raise SystemExit(f"the rows are not the examples of {args.replay} (token lengths differ)")
    what = {
        "artifact": str(args.replay),
        "recipe": meta.recipe,
        "dataset": meta.dataset,
        "split": meta.split,
        "recorded_with": meta.backbone,
        "timed_backbone": str(args.backbone),
        "exits": "replayed",
        "trained_at_commit": meta.trained_at_commit,
    }
    return model, spec, source, artifact.predictions, what


def trained_model(args: argparse.Namespace, device):
    """(model, dataset spec, source, None, description) for a trained model folder."""
    model, tokenizer, record = load_trained(args.model)
    spec = DATASETS.get(record.dataset)
    split = args.split or spec.eval_splits[0]
    rows = tokenized_rows(
        args.tokenized,
        record.backbone.requested,
        spec.name,
        split,
        lambda: load_tokenized(
            spec,
            split,
            tokenizer,
            DataConfig(max_train=args.examples, max_eval=args.examples, max_length=record.max_length, seed=0),
            Locations(mirror=args.mirror),
        )[1],
    )
    what = {
        "dir": str(args.model),
        "recipe": record.recipe,
        "dataset": spec.name,
        "split": split,
        "exits": "live",
        "trained_at_commit": record.provenance.git_commit,
        "train_args": record.provenance.argv,
    }
    return model, spec, TokenBatches(rows, tokenizer, device), None, what


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path, nargs="?", help="a trained model folder (or use --replay)")
    parser.add_argument("--replay", type=Path, help="an evaluation artefact whose exits are replayed")
    parser.add_argument(
        "--backbone", type=Path, help="with --replay: a backbone folder of the same architecture"
    )
    parser.add_argument(
        "--tokenized", type=Path, help="pre-tokenized rows written by benchmarks/gpu/bundle.py"
    )
    parser.add_argument("--mirror")
    parser.add_argument("--split", help="default: the dataset's first eval split")
    parser.add_argument("--examples", type=int, default=320)
    parser.add_argument("--policy", default="speed")
    parser.add_argument("--values", default="0.5,0.8,0.9")
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--precisions", default=ExecutionConfig().precision, help="comma list, each timed")
    parser.add_argument("--attention", default=ExecutionConfig().attention)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    run_provenance = provenance.collect(
        config={k: str(v) for k, v in vars(args).items()}
    )  # as the run starts
    if (args.model is None) == (args.replay is None) or (args.replay is not None) != (
        args.backbone is not None
    ):
        parser.error("give a trained model folder, or --replay ARTIFACT with --backbone FOLDER")
    device = resolve_device(args.device)
    threads = set_threads(args.threads)
    model, spec, source, replay, what = (replayed_model if args.replay else trained_model)(args, device)
    model.to(device)
    policy = resolve_policy(args.policy)
    points = [(f"{policy.name}={v}", policy, float(v)) for v in args.values.split(",")]
    print(
        f"{what['recipe']} on {spec.name}/{what['split']}, {len(source)} examples, exits {what['exits']}, "
        f"{device}, {threads} threads, {args.repeats} repeats"
    )
    print(
        f"{'precision':>9} {'batch':>5} {'setting':>12} {'exit':>5} {'pred x':>7} {'real x':>7} {'real/pred':>9} "
        f"{'full ms/ex':>10} {'ee ms/ex':>9} {'ee p90':>7}"
    )
    rows = []
    for precision in args.precisions.split(","):
        execution = resolve(ExecutionConfig(precision, args.attention), device)
        results = realized_vs_predicted(
            model,
            source,
            spec.task,
            points,
            [int(b) for b in args.batch_sizes.split(",")],
            args.repeats,
            device,
            execution,
            replay=replay,
        )
        for row in results:
            r = {**execution.to_dict(), **asdict(row)}
            rows.append(r)
            print(
                f"{execution.precision:>9} {r['batch_size']:5d} {r['setting']:>12} {r['mean_exit_layer']:5.2f} "
                f"{r['predicted_speedup']:7.2f} {r['realized_speedup']:7.2f} {r['realized_over_predicted']:9.2f} "
                f"{1e3 * r['full_depth']['total_s'] / len(source):10.2f} "
                f"{1e3 * r['early_exit']['total_s'] / len(source):9.2f} {r['early_exit']['per_example_p90_ms']:7.2f}"
            )
    if args.out:
        write_json(
            args.out,
            {
                "provenance": run_provenance,
                "model": what,
                "threads": threads,
                "device": str(device),
                "examples": len(source),
                "flops_source": "fvcore",
                "goals": {"batch_1": ">= 0.9 realized/predicted", "batch_32": ">= 0.8 realized/predicted"},
                "rows": rows,
            },
        )
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
