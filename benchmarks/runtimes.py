"""Does early exit's speed-up survive optimized runtimes? (issue "Early exit under optimized runtimes")

For each reference early-exit model at its paper policy's dev <= 1 pt point, at batch 1 and 32, on the same
pre-collated batches of the reported split: full depth under plain `transformers` eager (the backbone's own
forward, no heads), and full depth and early exit under each runtime of the engine (eager PyTorch,
torch.compile per layer and head, and per device: ONNX Runtime on a CPU, CUDA graphs on a GPU; fp32; and
eager PyTorch and the compiled runtimes but ONNX Runtime again in bf16 autocast, the layers' weights cast
once, on a GPU or a CPU with native bf16). From
these: realized / predicted per runtime (early exit against full depth under the *same* runtime: the honest
speed-up) and early exit against full depth under eager PyTorch (what a speed-up measured against eager
alone would claim). Above batch 1, early exit is also timed with layer-pool (``serving.schedulers``: every
example issued at once, in length order, up to the batch size per layer call, survivors of several batches
merged), which keeps later layers' batches full where compaction shrinks them.

The trained weights are not kept, so each model is rebuilt from its artefact's spec (pretrained backbone,
fresh heads) and its exits are replayed from the artefact's recorded outputs (``runtime.engine``): compute
does not depend on weight values. Goals (CPU): realized / predicted >= 0.90 at batch 1 and >= 0.85 at
batch 32 under the fastest runtime; its full depth at least as fast as plain transformers eager; early exit
>= 0.8x its FLOPs prediction against the fastest full-depth runtime.

    python benchmarks/runtimes.py --mirror ../shared/data --out results/benchmarks/runtimes_cpu.json

On a GPU machine without the mirror or the weights, the GPU kit (``benchmarks/gpu/run.sh``) runs it on a
bundle that ``--write-bundle`` made here (the artefacts, their tokenized rows and the points), with random
weights of each backbone's architecture: ``--bundle FOLDER --backbones FOLDER --device cuda``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import datasets
import numpy as np
import torch
from gpu.kit import bundled_rows, save_rows
from transformers import AutoModel, PreTrainedTokenizerBase

from fastexit_bench import provenance
from fastexit_bench.analysis.artifact import ExitArtifact
from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.analysis.sweep import SweepFiles
from fastexit_bench.data.spec import DATASETS
from fastexit_bench.execution import (
    FP32_ONLY_RUNTIMES,
    Execution,
    ExecutionConfig,
    cpu_supports_bf16,
    resolve,
    running,
)
from fastexit_bench.io import write_json
from fastexit_bench.locations import Locations
from fastexit_bench.models.backbones import resolve_backbone
from fastexit_bench.models.early_exit import EarlyExitModel
from fastexit_bench.models.saved import ModelSpec, build_model
from fastexit_bench.reporting.paper import timed_points
from fastexit_bench.runtime.batches import TokenBatches, evaluation_batches
from fastexit_bench.runtime.compiled import with_runtime
from fastexit_bench.runtime.latency import realized_vs_predicted, set_threads, time_call, timed_passes
from fastexit_bench.runtime.trained import artifact_rows
from fastexit_bench.serving.loadgen import serve
from fastexit_bench.serving.schedulers import LayerPool

REFERENCE = Path("results/reference")
CASES = {  # model: (experiment, dataset, recipe); seed 0, its sweep's reported split
    "DeeBERT SST-2 (minilm-l6)": ("sst2_full", "sst2", "deebert"),
    "FastBERT AG News (minilm-l6)": ("ag_news_minilm", "ag_news", "fastbert"),
    "FastBERT Book review (me5-small)": ("chinese_me5", "book_review", "fastbert"),
}
POINT = "dev drop<=1pt"
BUNDLE_CASES = "runtimes.json"
BF16 = "-bf16"
RUNTIME_LABELS = (
    "eager",
    "compile",
    "cudagraphs",
    "onnxruntime",
    *(f"{runtime}{BF16}" for runtime in ("eager", "compile", "cudagraphs")),
)


def configurations(device: torch.device) -> dict[str, Execution]:
    """How the engine runs under each label on ``device``: fp32 eager and the compiled runtimes that device
    has (ONNX Runtime on a CPU, CUDA graphs on a GPU), and each of those that runs bf16 in bf16 (``-bf16``,
    with the attention `auto` picks; its layers' weights cast once)."""
    compiled = ("compile", "onnxruntime") if device.type == "cpu" else ("compile", "cudagraphs")
    out = {runtime: Execution("fp32", "sdpa", runtime) for runtime in ("eager", *compiled)}
    for runtime in [r for r in ("eager", *compiled) if r not in FP32_ONLY_RUNTIMES]:
        out[f"{runtime}{BF16}"] = resolve(ExecutionConfig(precision="bf16", runtime=runtime), device)
    return out


class PlainTransformers:
    """Full depth as a user of `transformers` runs it: the backbone's own forward (AutoModel, eager)."""

    def __init__(self, location: str, device: torch.device):
        self.model = AutoModel.from_pretrained(location, attn_implementation="sdpa").to(device).eval()

    @torch.inference_mode()
    def run(self, recorded=None, **inputs):
        return self.model(**inputs).last_hidden_state


@dataclass
class Case:
    """One timed model: rebuilt from its artefact's spec on ``backbone`` (a name or a folder), the artefact
    (whose recorded outputs the exits replay), its rows and the operating point (setting, policy, value)."""

    name: str
    model: EarlyExitModel
    tokenizer: PreTrainedTokenizerBase
    backbone: str
    artifact_path: Path
    artifact: ExitArtifact
    rows: datasets.Dataset
    point: tuple[str, str, float]


def reference_case(name: str, mirror: str | None, resources: str | None) -> Case:
    """A model of :data:`CASES` from ``results/reference`` and the mirror."""
    experiment, dataset, recipe = CASES[name]
    selection = REFERENCE / experiment / "sweeps" / f"{dataset}.{recipe}.seed0.selection.csv"
    split, points = timed_points(
        selection, SweepFiles.of_selection(selection).model()
    )  # the sweep's own model
    (point,) = [p for p in points if p[0].endswith(POINT)]
    path = REFERENCE / experiment / "exits" / f"{dataset}.{recipe}.seed0.{split}.npz"
    artifact = ExitArtifact.load(path)
    model, tokenizer, _ = build_model(ModelSpec(**artifact.metadata.model), resources)
    backbone = resolve_backbone(artifact.metadata.model["backbone"], resources).location
    rows = artifact_rows(artifact, tokenizer, Locations(mirror=mirror))
    return Case(name, model, tokenizer, backbone, path, artifact, rows, point)


def bundled_cases(bundle: Path, backbones: Path) -> list[Case]:
    """The cases ``--write-bundle`` put in ``bundle``, each built on ``backbones/<its backbone>``."""
    cases = []
    for entry in json.loads((bundle / BUNDLE_CASES).read_text()):
        path = bundle / "artifacts" / entry["artifact"]
        artifact, backbone = ExitArtifact.load(path), str(backbones / entry["backbone"])
        meta = artifact.metadata
        model, tokenizer, _ = build_model(replace(ModelSpec(**meta.model), backbone=backbone))
        rows = bundled_rows(bundle / "tokenized", entry["backbone"], meta.dataset, meta.split)
        point = tuple(entry["point"])
        cases.append(Case(entry["name"], model, tokenizer, backbone, path, artifact, rows, point))
    return cases


def write_bundle(folder: Path, names: list[str], mirror: str | None, resources: str | None) -> None:
    """What a GPU machine needs to time ``names`` (artefacts, tokenized rows, points), in ``folder``; its
    ``runtimes.json`` names each case's backbone, which the kit bundles without weights."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "artifacts").mkdir(parents=True)
    entries = []
    for name in names:
        case = reference_case(name, mirror, resources)
        meta = case.artifact.metadata
        stored = f"{CASES[name][0]}.{case.artifact_path.name}"
        shutil.copy(case.artifact_path, folder / "artifacts" / stored)
        save_rows(case.rows, folder / "tokenized" / f"{meta.backbone_name}.{meta.dataset}.{meta.split}")
        entries.append(
            {"name": name, "artifact": stored, "backbone": meta.backbone_name, "point": case.point}
        )
    (folder / BUNDLE_CASES).write_text(json.dumps(entries, indent=1))
    print(f"wrote {len(entries)} runtime cases to {folder}")


def timed_inputs(case: Case, examples: int, device: torch.device):
    """The case's seeded subsample as batches on ``device``, its recorded outputs and its task."""
    artifact = case.artifact
    if not np.array_equal(np.asarray(case.rows["length"]), artifact.lengths):
        raise SystemExit(f"the rows are not the examples of {case.name}'s artefact (token lengths differ)")
    keep = np.sort(np.random.default_rng(0).permutation(len(case.rows))[:examples])
    source = TokenBatches(case.rows.select(keep.tolist()), case.tokenizer, str(device))
    return source, artifact.predictions.select(keep), DATASETS.get(artifact.metadata.dataset).task


def layer_pool_offline_s(
    model,
    runner,
    source,
    recorded,
    task: str,
    policy,
    value: float,
    batch_size: int,
    repeats: int,
    device,
    execution,
) -> float:
    """Seconds for every example of ``source`` through layer-pool, all issued at once in length order (its
    Offline scenario), up to ``batch_size`` per layer call; median of ``repeats`` after a warm-up pass. Its
    exits must be the recorded ones."""
    examples = np.argsort(source.lengths(), kind="stable")
    expected = policy.exit_layers(recorded, value)[examples]
    times = []
    with running(model.config, execution, device, inference=model.layers):
        for _ in range(repeats + 1):
            scheduler = LayerPool(runner, source, examples, task, batch_size, policy, value).replaying(
                recorded
            )
            served = serve(scheduler, len(examples), np.zeros(len(examples)))
            if not np.array_equal(served.exit_layers, expected):
                raise SystemExit("layer-pool and the recorded outputs disagree on the exits: nothing timed")
            times.append(len(examples) / served.throughput_per_s())
    return statistics.median(times[1:])


def time_case(case: Case, args, device: torch.device, cache: Path) -> list[dict]:
    source, recorded, task = timed_inputs(case, args.examples, device)
    model = case.model.to(device).eval()
    setting, policy_name, value = case.point
    policy = resolve_policy(policy_name)
    plain = PlainTransformers(case.backbone, device)
    settings = configurations(device)
    rows = []
    for batch_size in args.batch_sizes:
        batches = [source.batch(i) for i in evaluation_batches(source, batch_size, by_length=batch_size > 1)]
        transformers_s = timed_passes({"t": plain}, batches, device, args.repeats)["t"]["total_s"]
        per_runtime = {}
        for runtime in args.runtimes:
            execution = settings[runtime]
            runner = with_runtime(model, execution, cache / runtime, args.threads)
            (row,) = realized_vs_predicted(
                model,
                source,
                task,
                [(setting, policy, value)],
                [batch_size],
                args.repeats,
                device,
                execution,
                replay=recorded,
                runner=runner,
            )
            pool_s = None
            if batch_size > 1:
                pool_s = layer_pool_offline_s(
                    model,
                    runner,
                    source,
                    recorded,
                    task,
                    policy,
                    value,
                    batch_size,
                    args.repeats,
                    device,
                    execution,
                )
            per_runtime[runtime] = row, pool_s
        eager_full = per_runtime["eager"][0].full_depth["total_s"] if "eager" in per_runtime else None
        for runtime, (row, pool_s) in per_runtime.items():
            full, early = row.full_depth["total_s"], row.early_exit["total_s"]
            rows.append(
                {
                    "model": case.name,
                    "point": f"{policy_name}={value:g} ({POINT})",
                    "batch_size": batch_size,
                    "runtime": runtime,
                    "execution": settings[runtime].to_dict(),
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
                    "layer_pool_ms": 1e3 * pool_s / len(source) if pool_s else None,
                    "layer_pool_over_predicted": full / pool_s / row.predicted_speedup if pool_s else None,
                }
            )
            print(
                f"{case.name:34} b{batch_size:<3} {runtime:12} full {rows[-1]['full_depth_ms']:7.2f} ms  "
                f"early {rows[-1]['early_exit_ms']:7.2f} ms  transformers {rows[-1]['transformers_full_ms']:7.2f} ms  "
                f"same-runtime {rows[-1]['speedup_same_runtime']:5.2f}x / predicted {row.predicted_speedup:5.2f}x"
                + (f"  layer-pool {rows[-1]['layer_pool_ms']:7.2f} ms" if pool_s else "")
            )
    return rows


def layer_cost_by_batch(
    model: EarlyExitModel,
    runtimes: list[str],
    device: torch.device,
    tokens: int = 32,
    sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32),
) -> list[dict]:
    """One encoder layer's time per example at each batch size, per eager precision: a compacted batch runs
    its later layers on fewer examples, so early exit pays what small batches cost there. ``tokens`` tokens
    per example, median of 50 calls."""
    out = []
    settings = configurations(device)
    for runtime in [r for r in runtimes if settings[r].runtime == "eager"]:
        execution = settings[runtime]
        with running(model.config, execution, device, inference=model.layers), torch.inference_mode():
            for size in sizes:
                ids = torch.randint(1000, 2000, (size, tokens), device=device)
                hidden, additive = model.embed(ids, torch.ones(size, tokens, device=device))
                timing = time_call(lambda h=hidden, a=additive: model.run_layer(0, h, a), device, 5, 50)
                out.append(
                    {"runtime": runtime, "batch_size": size, "us_per_example": 1e6 * timing.median_s / size}
                )
    for row in out:
        print(
            f"layer cost  {row['runtime']:12} b{row['batch_size']:<3} {row['us_per_example']:8.1f} us/example"
        )
    return out


def fastest_runtime_goals(rows: list[dict]) -> list[dict]:
    """Per (model, batch size): the runtime with the fastest full depth, and the issue's three goals for it,
    for the engine's compaction and, above batch 1, for the better of compaction and layer-pool."""
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
                "layer_pool_over_predicted": best["layer_pool_over_predicted"],
                "met_realized_over_predicted_with_layer_pool": max(
                    best["realized_over_predicted"], best["layer_pool_over_predicted"] or 0.0
                )
                >= floor,
            }
        )
    return out


def table(rows: list[dict]) -> str:
    header = (
        "| model | batch | runtime | full ms/ex | early ms/ex | transformers full ms/ex | same-runtime x "
        "| predicted x | realized/predicted | vs eager full x | layer-pool ms/ex | layer-pool realized/predicted |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        vs_eager = f"{r['speedup_vs_eager_full']:.2f}" if r["speedup_vs_eager_full"] else ""
        pool = (
            f"{r['layer_pool_ms']:.2f} | {r['layer_pool_over_predicted']:.2f}"
            if r["layer_pool_ms"]
            else " | "
        )
        lines.append(
            f"| {r['model']} | {r['batch_size']} | {r['runtime']} | {r['full_depth_ms']:.2f} | "
            f"{r['early_exit_ms']:.2f} | {r['transformers_full_ms']:.2f} | {r['speedup_same_runtime']:.2f} | "
            f"{r['predicted_speedup']:.2f} | {r['realized_over_predicted']:.2f} | {vs_eager} | {pool} |"
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
        choices=RUNTIME_LABELS,
        help="engine configurations to time (default: every one the device has; the bf16 ones on a CPU "
        "only with native bf16)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--examples", type=int, default=128, help="seeded subsample of the reported split")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per batch (median kept)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bundle", type=Path, help="time the cases of a bundle (--write-bundle) instead")
    parser.add_argument("--backbones", type=Path, help="with --bundle: folders of the bundle's backbones")
    parser.add_argument("--write-bundle", type=Path, help="write --models' cases for a GPU machine, and stop")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.write_bundle:
        write_bundle(args.write_bundle, args.models, args.mirror, args.resources)
        return
    if (args.bundle is None) != (args.backbones is None):
        parser.error("--bundle and --backbones go together")
    device = torch.device(args.device)
    settings = configurations(device)
    args.runtimes = args.runtimes or [
        r for r in settings if not r.endswith(BF16) or device.type != "cpu" or cpu_supports_bf16()
    ]
    if unknown := [r for r in args.runtimes if r not in settings]:
        parser.error(f"{', '.join(unknown)} cannot run on {device.type}; choose from {', '.join(settings)}")
    threads = set_threads(args.threads)
    run_provenance = provenance.collect(config={k: str(v) for k, v in vars(args).items()})
    if args.bundle:
        cases = bundled_cases(args.bundle, args.backbones)
    else:
        cases = [reference_case(name, args.mirror, args.resources) for name in args.models]
    with tempfile.TemporaryDirectory() as cache:
        rows = [row for case in cases for row in time_case(case, args, device, Path(cache))]
    goals = fastest_runtime_goals(rows) if device.type == "cpu" else []  # the issue sets goals for the CPU
    layer_costs = layer_cost_by_batch(cases[0].model, args.runtimes, device)
    print(table(rows))
    for goal in goals:
        print(goal)
    if args.out:
        write_json(
            args.out,
            {
                "provenance": run_provenance,
                "threads": threads,
                "device": str(device),
                "configurations": {r: settings[r].to_dict() for r in args.runtimes},
                "exits": "replayed from the committed artefacts (pretrained backbone, fresh heads)"
                if args.bundle is None
                else "replayed from the bundled artefacts (random weights of each backbone's architecture)",
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
