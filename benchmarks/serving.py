"""Early exit under load: `fastexit-bench serve-bench` on trained models at their paper policy's operating
point within a dev budget (default: at most 1 point below full depth), then one table over all of them.

    python benchmarks/serving.py MODEL SELECTION [MODEL SELECTION ...] --mirror ../shared/data \\
        --out-dir results/benchmarks

MODEL is a folder from `fastexit-bench train`, or an evaluation artefact (.npz) of a model whose weights are
gone (served by replay: `serve-bench` on an artefact), SELECTION its sweep's OUT.selection.csv. Each model writes
``serving_<device>_<dataset>_<recipe>.json`` (and its p99-vs-load plot) to ``--out-dir``. Goals (issue 18,
CPU): layer-pool sustains >= 1.3x compaction's Server rate at the same p99 bound and >= 0.8x the
FLOPs-predicted speed-up over full depth; queries that never exit see a SingleStream p99 <= 1.05x full
depth's on the same queries.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fastexit_bench import provenance
from fastexit_bench.analysis.artifact import ExitArtifact
from fastexit_bench.analysis.sweep import SELECTION_COLUMNS, read_sweep_csv
from fastexit_bench.cli import main
from fastexit_bench.device import resolve_device
from fastexit_bench.locations import Locations
from fastexit_bench.reporting.tables import paper_policy
from fastexit_bench.runtime.trained import ReplayedSplit, TrainedSplit, open_replayed, open_trained
from fastexit_bench.serving.bench import is_artifact
from fastexit_bench.serving.clocks import Clock
from fastexit_bench.serving.record import ServingRecord, ServingSettings
from fastexit_bench.serving.schedulers import Scheduler, make_scheduler


def operating_point(selection: Path, target: str) -> tuple[str, float]:
    """The paper policy's (policy, value) that the sweep chose on dev for ``target`` (e.g. drop<=1pt)."""
    table = read_sweep_csv(selection, SELECTION_COLUMNS)
    policy = paper_policy(str(table.recipe.iloc[0]))
    row = table[(table.policy == policy) & (table.target == target)]
    if row.empty:
        raise SystemExit(f"{selection} has no {target} row for its paper policy {policy}")
    return str(row.policy.iloc[0]), float(row.value.iloc[0])


def add_served_model(parser: argparse.ArgumentParser) -> None:
    """The arguments of a benchmark that serves one trained model at one operating point."""
    parser.add_argument("model", type=Path, help="model folder from `fastexit-bench train`")
    parser.add_argument("selection", type=Path, help="its sweep's OUT.selection.csv")
    parser.add_argument("--mirror", required=True)
    parser.add_argument(
        "--target", default="drop<=1pt", help="the dev budget whose operating point is served"
    )


def open_served(model: Path, mirror: str) -> TrainedSplit | ReplayedSplit:
    """A model folder, or an evaluation artefact to replay (weights gone), on serving's examples of its split."""
    settings, where = ServingSettings(), Locations(mirror=mirror)
    if is_artifact(model):
        return open_replayed(model, examples=settings.examples, where=where, seed=settings.seed)
    return open_trained(model, settings.split, examples=settings.examples, where=where)


def run_of(opened: TrainedSplit | ReplayedSplit):
    """The served model's run (dataset, recipe, seed): its training record, or the replayed artefact's."""
    return opened.metadata if isinstance(opened, ReplayedSplit) else opened.record


def scheduler_for(
    opened: TrainedSplit | ReplayedSplit,
    name: str,
    policy,
    value: float,
    examples: np.ndarray,
    clock: Clock | None = None,
) -> Scheduler:
    """Scheduler ``name`` serving ``opened`` (replaying an artefact's outputs) with serving's batch limit,
    its model charged to ``clock`` where that is virtual."""
    replayed = isinstance(opened, ReplayedSplit)
    task = opened.recorded.task if replayed else opened.dataset.task
    runner = clock.model(opened.runner) if clock else opened.runner
    scheduler = make_scheduler(
        name, runner, opened.source, examples, task, policy, value, ServingSettings.max_batch
    )
    return scheduler.replaying(opened.recorded) if replayed else scheduler


def served_header(args: argparse.Namespace, record, policy: str, value: float, threads: int) -> dict:
    """What every served-model benchmark's JSON starts with: provenance (its arguments), the model's run
    (a ``TrainingRecord``, or a replayed artefact's metadata), the operating point and the threads."""
    return {
        "provenance": provenance.collect(config={k: str(v) for k, v in vars(args).items()}),
        "model": {"dataset": record.dataset, "recipe": record.recipe, "seed": record.seed},
        "policy": policy,
        "value": value,
        "threads": threads,
    }


def table(records: list[ServingRecord]) -> str:
    header = (
        "| model | policy = value | scheduler | SingleStream p50 / p99 ms | never-exit p99 ms | Offline q/s "
        "| Server q/s at p99 bound (each search) | p50 / p99 ms there |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for record in records:
        model = f"{record.model.dataset} {record.model.recipe} (pred. {record.predicted_speedup:.2f}x)"
        for name, results in record.results.items():
            single, server = results.get("single_stream", {}), results.get("server", {})
            at = server.get("at_bound", {})
            runs = ", ".join(f"{rate:.0f}" for rate in server.get("runs", []))
            lines.append(
                f"| {model} | {record.policy} = {record.value:.3g} | {name} "
                f"| {single['all']['p50_ms']:.1f} / {single['all']['p99_ms']:.1f} "
                f"| {single['never_exit'].get('p99_ms', float('nan')):.1f} "
                f"| {results['offline']['throughput_per_s']:.0f} | {server['rate_at_bound_per_s']:.0f} ({runs}) "
                f"| {at.get('p50_ms', float('nan')):.1f} / {at.get('p99_ms', float('nan')):.1f} |"
            )
    return "\n".join(lines)


def served_run(model: Path) -> tuple[str, str]:
    """The dataset and recipe of a model folder or of an evaluation artefact."""
    if is_artifact(model):
        meta = ExitArtifact.load(model).metadata
        return meta.dataset, meta.recipe
    info = json.loads((model / "training.json").read_text())
    return info["dataset"], info["recipe"]


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="+", type=Path, help="MODEL SELECTION, repeated")
    parser.add_argument(
        "--target", default="drop<=1pt", help="the dev budget whose operating point is served"
    )
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--device", default="auto")
    args, serve_options = parser.parse_known_args(argv)
    if len(args.pairs) % 2:
        parser.error("give MODEL SELECTION pairs")
    device = resolve_device(args.device).type
    records = []
    for model, selection in zip(args.pairs[::2], args.pairs[1::2]):
        policy, value = operating_point(selection, args.target)
        dataset, recipe = served_run(model)
        out = args.out_dir / f"serving_{device}_{dataset}_{recipe}.json"
        status = main(
            [
                "serve-bench",
                str(model),
                "--policy",
                policy,
                "--value",
                repr(value),
                "--device",
                args.device,
                "--out",
                str(out),
                "--overwrite",
                *serve_options,
            ]
        )
        if status:
            raise SystemExit(status)
        records.append(ServingRecord.from_dict(json.loads(out.read_text()), str(out)))
    print(table(records))
    for record in records:
        goals = ", ".join(f"{goal} {ratio:.2f}" for goal, ratio in record.goals().items())
        print(f"{record.model.dataset} {record.model.recipe}: {goals}")


if __name__ == "__main__":
    run()
