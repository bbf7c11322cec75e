"""Does early exit's speed-up survive optimized runtimes? (issue "Early exit under optimized runtimes")

For each reference early-exit model at its paper policy's dev <= 1 pt point, at batch 1 and 32, on the same
pre-collated batches of the reported split: full depth under plain `transformers` eager (the backbone's own
forward, no heads), and full depth and early exit under each runtime of the engine (eager PyTorch,
torch.compile per layer and head, ONNX Runtime per layer and head; fp32; and eager PyTorch in bf16 autocast, its
layers' weights cast once, on a CPU with native bf16). From these: realized / predicted
per runtime (early exit against full depth under the *same* runtime: the honest speed-up) and early exit
against full depth under eager PyTorch (what a speed-up measured against eager alone would claim).

The trained weights are not kept, so each model is rebuilt from its artefact's spec (pretrained backbone,
fresh heads) and its exits are replayed from the artefact's recorded outputs (``runtime.engine``): compute
does not depend on weight values. Goals (CPU): realized / predicted >= 0.90 at batch 1 and >= 0.85 at
batch 32 under the fastest runtime; its full depth at least as fast as plain transformers eager; early exit
>= 0.8x its FLOPs prediction against the fastest full-depth runtime.

    python benchmarks/runtimes.py --mirror ../shared/data --out results/benchmarks/runtimes_cpu.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from gpu.kit import artifact_rows
from transformers import AutoModel

from fastexit_bench import provenance
from fastexit_bench.analysis.artifact import ExitArtifact
from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.analysis.sweep import SweepFiles
from fastexit_bench.data.spec import DATASETS
from fastexit_bench.execution import Execution, ExecutionConfig, cpu_supports_bf16, resolve, running
from fastexit_bench.io import write_json
from fastexit_bench.models.backbones import resolve_backbone
from fastexit_bench.models.saved import ModelSpec, build_model
from fastexit_bench.reporting.paper import timed_points
from fastexit_bench.runtime.batches import TokenBatches, evaluation_batches
from fastexit_bench.runtime.compiled import with_runtime
from fastexit_bench.runtime.latency import realized_vs_predicted, set_threads, time_call, timed_passes

REFERENCE = Path("results/reference")
CASES = {  # model: (experiment, dataset, recipe); seed 0, its sweep's reported split
    "DeeBERT SST-2 (minilm-l6)": ("sst2_full", "sst2", "deebert"),
    "FastBERT AG News (minilm-l6)": ("ag_news_minilm", "ag_news", "fastbert"),
    "FastBERT Book review (me5-small)": ("chinese_me5", "book_review", "fastbert"),
}
POINT = "dev drop<=1pt"
CPU = torch.device("cpu")
CONFIGURATIONS = {  # label: how the engine runs; bf16 with the attention `auto` picks for it
    "eager": Execution("fp32", "sdpa", "eager"),
    "compile": Execution("fp32", "sdpa", "compile"),
    "onnxruntime": Execution("fp32", "sdpa", "onnxruntime"),
    "eager-bf16": resolve(ExecutionConfig(precision="bf16"), CPU),
}


class PlainTransformers:
    """Full depth as a user of `transformers` runs it: the backbone's own forward (AutoModel, eager)."""

    def __init__(self, location: str):
        self.model = AutoModel.from_pretrained(location, attn_implementation="sdpa").eval()

    @torch.inference_mode()
    def run(self, recorded=None, **inputs):
        return self.model(**inputs).last_hidden_state


def case_inputs(experiment: str, dataset: str, recipe: str, examples: int, mirror: str | None, resources):
    """The model rebuilt from the artefact, its timed rows, their recorded outputs and the operating point."""
    selection = REFERENCE / experiment / "sweeps" / f"{dataset}.{recipe}.seed0.selection.csv"
    split, points = timed_points(
        selection, SweepFiles.of_selection(selection).model()
    )  # the sweep's own model
    (point,) = [p for p in points if p[0].endswith(POINT)]
    artifact = ExitArtifact.load(REFERENCE / experiment / "exits" / f"{dataset}.{recipe}.seed0.{split}.npz")
    meta = artifact.metadata
    model, tokenizer, _ = build_model(ModelSpec(**meta.model), resources)
    spec = DATASETS.get(meta.dataset)
    rows = artifact_rows(artifact, tokenizer, mirror)
    rows_count = len(rows)
    if not np.array_equal(np.asarray(rows["length"]), artifact.lengths):
        raise SystemExit(f"the mirror's rows are not the examples of {meta.dataset}/{split} (lengths differ)")
    keep = np.sort(np.random.default_rng(0).permutation(rows_count)[:examples])
    source = TokenBatches(rows.select(keep.tolist()), tokenizer)
    return model.eval(), source, artifact.predictions.select(keep), spec.task, point, meta


def time_case(name, case, args, cache: Path) -> list[dict]:
    model, source, recorded, task, (setting, policy_name, value), meta = case_inputs(
        *case, args.examples, args.mirror, args.resources
    )
    policy = resolve_policy(policy_name)
    plain = PlainTransformers(resolve_backbone(meta.model["backbone"], args.resources).location)
    rows = []
    for batch_size in args.batch_sizes:
        batches = [source.batch(i) for i in evaluation_batches(source, batch_size, by_length=batch_size > 1)]
        transformers_s = timed_passes({"t": plain}, batches, CPU, args.repeats)["t"]["total_s"]
        per_runtime = {}
        for runtime in args.runtimes:
            execution = CONFIGURATIONS[runtime]
            runner = with_runtime(model, execution, cache / runtime, args.threads)
            (row,) = realized_vs_predicted(
                model,
                source,
                task,
                [(setting, policy, value)],
                [batch_size],
                args.repeats,
                CPU,
                execution,
                replay=recorded,
                runner=runner,
            )
            per_runtime[runtime] = row
        eager_full = per_runtime["eager"].full_depth["total_s"] if "eager" in per_runtime else None
        for runtime, row in per_runtime.items():
            full, early = row.full_depth["total_s"], row.early_exit["total_s"]
            rows.append(
                {
                    "model": name,
                    "point": f"{policy_name}={value:g} ({POINT})",
                    "batch_size": batch_size,
                    "runtime": runtime,
                    "execution": execution.to_dict(),
                    "mean_exit_layer": row.mean_exit_layer,
                    "predicted_speedup": row.predicted_speedup,
                    "transformers_full_ms": 1e3 * transformers_s / len(source),
                    "full_depth_ms": 1e3 * full / len(source),
                    "early_exit_ms": 1e3 * early / len(source),
                    "speedup_same_runtime": full / early,
                    "realized_over_predicted": row.realized_over_predicted,
                    "speedup_vs_eager_full": eager_full / early if eager_full else None,
                    "speedup_vs_transformers": transformers_s / early,
                    "full_vs_transformers": transformers_s / full,
                }
            )
            print(
                f"{name:34} b{batch_size:<3} {runtime:12} full {rows[-1]['full_depth_ms']:7.2f} ms  "
                f"early {rows[-1]['early_exit_ms']:7.2f} ms  transformers {rows[-1]['transformers_full_ms']:7.2f} ms  "
                f"same-runtime {rows[-1]['speedup_same_runtime']:5.2f}x / predicted {row.predicted_speedup:5.2f}x"
            )
    return rows


def layer_cost_by_batch(args, tokens: int = 32, sizes=(1, 2, 4, 8, 16, 32)) -> list[dict]:
    """One encoder layer's time per example at each batch size, per eager precision: a compacted batch runs
    its later layers on fewer examples, so early exit pays what small batches cost there. First model's
    backbone, ``tokens`` tokens per example, median of 50 calls."""
    model, *_ = case_inputs(*CASES[args.models[0]], 8, args.mirror, args.resources)
    out = []
    for runtime in [r for r in args.runtimes if CONFIGURATIONS[r].runtime == "eager"]:
        execution = CONFIGURATIONS[runtime]
        with running(model.config, execution, CPU, inference=model.layers), torch.inference_mode():
            for size in sizes:
                hidden, additive = model.embed(
                    torch.randint(1000, 2000, (size, tokens)), torch.ones(size, tokens)
                )
                timing = time_call(lambda h=hidden, a=additive: model.run_layer(0, h, a), CPU, 5, 50)
                out.append(
                    {"runtime": runtime, "batch_size": size, "us_per_example": 1e6 * timing.median_s / size}
                )
    for row in out:
        print(
            f"layer cost  {row['runtime']:12} b{row['batch_size']:<3} {row['us_per_example']:8.1f} us/example"
        )
    return out


def fastest_runtime_goals(rows: list[dict]) -> list[dict]:
    """Per (model, batch size): the runtime with the fastest full depth, and the issue's three goals for it."""
    out = []
    for key in sorted({(r["model"], r["batch_size"]) for r in rows}):
        group = [r for r in rows if (r["model"], r["batch_size"]) == key]
        best = min(group, key=lambda r: r["full_depth_ms"])
        floor = 0.90 if key[1] == 1 else 0.85
        out.append(
            {
                "model": key[0],
                "batch_size": key[1],
                "fastest_runtime": best["runtime"],
                "realized_over_predicted": best["realized_over_predicted"],
                "goal_realized_over_predicted": floor,
                "met_realized_over_predicted": best["realized_over_predicted"] >= floor,
                "full_vs_transformers": best["full_vs_transformers"],
                "met_full_at_least_transformers": best["full_vs_transformers"] >= 1.0,
                "early_vs_fastest_full_over_predicted": best["speedup_same_runtime"]
                / best["predicted_speedup"],
                "met_early_exit_0.8_of_prediction": best["speedup_same_runtime"]
                >= 0.8 * best["predicted_speedup"],
            }
        )
    return out


def table(rows: list[dict]) -> str:
    header = (
        "| model | batch | runtime | full ms/ex | early ms/ex | transformers full ms/ex | same-runtime x "
        "| predicted x | realized/predicted | vs eager full x |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        vs_eager = f"{r['speedup_vs_eager_full']:.2f}" if r["speedup_vs_eager_full"] else ""
        lines.append(
            f"| {r['model']} | {r['batch_size']} | {r['runtime']} | {r['full_depth_ms']:.2f} | "
            f"{r['early_exit_ms']:.2f} | {r['transformers_full_ms']:.2f} | {r['speedup_same_runtime']:.2f} | "
            f"{r['predicted_speedup']:.2f} | {r['realized_over_predicted']:.2f} | {vs_eager} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mirror", default="../shared/data")
    parser.add_argument("--resources", default=None)
    parser.add_argument("--models", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument(
        "--runtimes",
        nargs="+",
        choices=list(CONFIGURATIONS),
        default=[r for r in CONFIGURATIONS if r != "eager-bf16" or cpu_supports_bf16()],
        help="engine configurations to time (default: all; eager-bf16 only on a CPU with native bf16)",
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--examples", type=int, default=128, help="seeded subsample of the reported split")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per batch (median kept)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    threads = set_threads(args.threads)
    run_provenance = provenance.collect(config={k: str(v) for k, v in vars(args).items()})
    with tempfile.TemporaryDirectory() as cache:
        rows = [row for name in args.models for row in time_case(name, CASES[name], args, Path(cache))]
    goals = fastest_runtime_goals(rows)
    layer_costs = layer_cost_by_batch(args)
    print(table(rows))
    for goal in goals:
        print(goal)
    if args.out:
        write_json(
            args.out,
            {
                "provenance": run_provenance,
                "threads": threads,
                "device": "cpu",
                "configurations": {r: CONFIGURATIONS[r].to_dict() for r in args.runtimes},
                "exits": "replayed from the committed artefacts (pretrained backbone, fresh heads)",
                "examples": args.examples,
                "repeats": args.repeats,
                "rows": rows,
                "goals": goals,
                "layer_cost_by_batch": layer_costs,
                "median_realized_over_predicted": {
                    runtime: statistics.median(
                        r["realized_over_predicted"] for r in rows if r["runtime"] == runtime
                    )
                    for runtime in args.runtimes
                },
            },
        )


if __name__ == "__main__":
    main()
