"""Paper-layout tables: every model of an experiment at its paper's operating points, beside the
numbers the papers' authors published.

A model that always runs to the end (baseline, truncated-k) is one row. An early-exit model is one row
per setting of its paper's exit policy (``Recipe.exit_policy``): fixed values, as in FastBERT's
``speed`` 0.1/0.5/0.8, or values chosen on the dev split, as in DeeBERT's thresholds (fastest value
within N metric points of full depth). Rows are reported on the held-out split when the dataset has
one (dev otherwise), with FLOPs in FastBERT's convention and the fvcore count, the change against the
experiment's baseline, and the published numbers of ``published.yaml`` with their source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from fastexit_bench.data.spec import DATASETS
from fastexit_bench.errors import FastExitError
from fastexit_bench.analysis.artifact import ExitArtifact
from fastexit_bench.analysis.flops import FastBertConventionFlops
from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.analysis.sweep import Target, select, sweep
from fastexit_bench.training.recipes import get_recipe

PUBLISHED = Path(__file__).with_name("published.yaml")
LAYOUTS = ("fastbert", "deebert")


@dataclass(frozen=True)
class TableSpec:
    """How an experiment's paper table is laid out and which operating points it shows."""

    layout: str = "deebert"
    values: dict[str, tuple[float, ...]] = field(default_factory=dict)
    max_drop: tuple[float, ...] = (0.0, 1.0, 2.0)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise FastExitError(f"paper table layout {self.layout!r} is not one of {LAYOUTS}")


@dataclass(frozen=True)
class Setting:
    """One operating point: a row label, the policy and its value."""

    label: str
    policy: str
    value: float


def settings(recipe: str, dev: ExitArtifact, spec: TableSpec) -> list[Setting]:
    """The operating points of one model: full depth, the fixed values, or the dev-chosen values."""
    policy_name = get_recipe(recipe).exit_policy
    if policy_name is None:
        return [Setting("full depth", "static", float(dev.predictions.num_layers))]
    policy = resolve_policy(policy_name)
    if policy.name in spec.values:
        return [Setting(f"{policy.name}={value:g}", policy.name, value) for value in spec.values[policy.name]]
    metric = dev.metadata["metrics"][0]
    table = sweep(dev, [policy, resolve_policy("static")])
    chosen = select(table, metric, [Target("max_drop", points) for points in spec.max_drop])
    return [Setting(f"{policy.name}, dev {pick.target}", policy.name, float(pick.value))
            for pick in chosen.itertuples() if pick.policy == policy.name]


def measure(artifact: ExitArtifact, setting: Setting) -> dict[str, Any]:
    """Headline metric, mean exit layer and FLOPs (fvcore at true lengths; FastBERT's convention) of one
    operating point on one split."""
    policy = resolve_policy(setting.policy)
    (row,) = sweep(artifact, [policy], {policy.name: [setting.value]}).to_dict("records")
    convention = FastBertConventionFlops(artifact.metadata["architecture"])
    flops_fastbert = 2 * convention.per_example(np.array([row["mean_exit_layer"]]), np.zeros(1), policy.reads)[0]
    metric = artifact.metadata["metrics"][0]
    return {"metric": metric, "value": setting.value, "score": row[metric],
            "mean_exit_layer": row["mean_exit_layer"], "flops": row["flops_per_example"],
            "flops_fastbert": float(flops_fastbert)}


def reported_split(artifacts: dict[str, ExitArtifact]) -> str:
    """The held-out split when there is one besides dev (the first evaluation split), else dev."""
    splits = list(artifacts)
    return splits[1] if len(splits) > 1 else splits[0]


def runs(artifacts: Sequence[ExitArtifact]) -> list[dict[str, ExitArtifact]]:
    """Artefacts grouped per model (dataset, recipe, seed), by split in the dataset's order (dev first)."""
    grouped: dict[tuple, dict[str, ExitArtifact]] = {}
    for artifact in artifacts:
        meta = artifact.metadata
        grouped.setdefault((meta["dataset"], meta["recipe"], meta["seed"]), {})[meta["split"]] = artifact
    ordered = []
    for (dataset, _, _), by_split in grouped.items():
        order = [s for s in DATASETS.get(dataset).eval_splits if s in by_split]
        ordered.append({split: by_split[split] for split in order + sorted(set(by_split) - set(order))})
    return ordered


def operating_points(runs: Sequence[dict[str, ExitArtifact]], spec: TableSpec) -> pd.DataFrame:
    """One row per (run, setting). ``runs``: per model, its artefacts by split, dev first."""
    rows = []
    for artifacts in runs:
        dev = next(iter(artifacts.values()))
        split = reported_split(artifacts)
        meta = dev.metadata
        for setting in settings(meta["recipe"], dev, spec):
            rows.append({"dataset": meta["dataset"], "split": split, "recipe": meta["recipe"],
                         "setting": setting.label, "policy": setting.policy, "seed": meta["seed"],
                         **measure(artifacts[split], setting)})
    return pd.DataFrame(rows)


def against_baseline(points: pd.DataFrame) -> pd.DataFrame:
    """Metric change (points) and speed-ups against the same seed's baseline, by both FLOPs counts."""
    baseline = points[points.recipe == "baseline"].set_index(["dataset", "seed"])
    if baseline.empty:
        raise FastExitError("a paper table compares against the baseline: add 'baseline' to the experiment's recipes")
    base = baseline.loc[list(zip(points.dataset, points.seed))]
    return points.assign(
        delta_points=100 * (points.score.to_numpy() - base.score.to_numpy()),
        speedup=base.flops.to_numpy() / points.flops.to_numpy(),
        speedup_fastbert=base.flops_fastbert.to_numpy() / points.flops_fastbert.to_numpy(),
    )


@cache
def published() -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The published-numbers file: sources by key, and rows."""
    data = yaml.safe_load(PUBLISHED.read_text(encoding="utf-8"))
    return data["sources"], data["rows"]


def published_for(dataset: str, recipe: str, policy: str, value: float, metric: str) -> dict[str, Any] | None:
    """The published numbers for one of our rows (and the paper's own baseline, for its deltas)."""
    sources, rows = published()
    for row in rows:
        if (row["dataset"], row["recipe"]) != (dataset, recipe) or row.get("policy", policy) != policy:
            continue
        if row.get("value") is not None and not np.isclose(row["value"], value):
            continue
        base = next(r for r in rows if (r["source"], r["dataset"], r.get("backbone")) ==
                    (row["source"], dataset, row.get("backbone")) and r["recipe"] == "baseline")
        score, base_score = row.get(metric, row.get("score")), base.get(metric, base.get("score"))
        speedup = row.get("speedup") or (base["flops_fastbert"] / row["flops_fastbert"]
                                         if "flops_fastbert" in row else None)
        source = sources[row["source"]]
        return {"paper_score": score, "paper_delta_points": 100 * (score - base_score),
                "paper_speedup": speedup, "paper_flops_fastbert": row.get("flops_fastbert"),
                "paper_source": f"{source['paper']}, {row.get('backbone', source.get('backbone', ''))}".strip(", ")}
    return None


SHOWN = {  # layout -> (column, heading) in the paper's order
    "fastbert": [("score", "{metric}"), ("flops_fastbert", "FLOPs (M, FastBERT conv.)"),
                 ("speedup_fastbert", "speed-up (FastBERT conv.)"), ("speedup", "speed-up (fvcore)"),
                 ("delta_points", "Δ vs baseline (pt)"), ("realized_b1", "realized speed-up b1"),
                 ("realized_b32", "realized speed-up b32")],
    "deebert": [("value", "threshold"), ("score", "{metric}"), ("delta_points", "Δ vs baseline (pt)"),
                ("time_saving", "time saving (FLOPs)"), ("realized_saving_b1", "time saving b1 (measured)"),
                ("realized_saving_b32", "time saving b32 (measured)")],
}
PAPER_SHOWN = [("paper_score", "paper {metric}"), ("paper_delta_points", "paper Δ (pt)"),
               ("paper_speedup", "paper speed-up"), ("delta_vs_paper", "our Δ − paper Δ (pt)"),
               ("paper_source", "paper source")]


def with_latency(points: pd.DataFrame, latency: pd.DataFrame | None) -> pd.DataFrame:
    """Attach measured speed-ups (early exit vs the same model at full depth) by batch size."""
    points = points.assign(time_saving=1 - 1 / points.speedup)
    if latency is None or latency.empty:
        return points
    keys = ["dataset", "recipe", "seed", "setting"]
    for batch_size in sorted(latency.batch_size.unique()):
        realized = latency[latency.batch_size == batch_size].set_index(keys).realized_speedup
        column = pd.Series([realized.get(tuple(k)) for k in points[keys].itertuples(index=False)], index=points.index,
                           dtype=float)
        points[f"realized_b{batch_size}"] = column
        points[f"realized_saving_b{batch_size}"] = 1 - 1 / column
    return points


def _format(value: Any, column: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, str):
        return value
    if "flops" in column:
        return f"{value / 1e6:,.0f}"
    if "saving" in column:
        return f"{100 * value:.1f}%"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def paper_table(points: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Mean ± std over seeds of every operating point, in the layout's columns, with the published
    numbers and our-vs-paper deltas."""
    keys = ["dataset", "split", "recipe", "setting", "policy", "metric"]
    columns = list(dict.fromkeys(["value", "delta_points", *(c for c, _ in SHOWN[spec.layout] if c in points.columns)]))
    grouped = points.groupby(keys, sort=False)
    mean, std, count = grouped[columns].mean(), grouped[columns].std(), grouped.size()
    rows = []
    for key, means in mean.iterrows():
        dataset, split, recipe, setting, policy, metric = key
        paper = published_for(dataset, recipe, policy, means.get("value", np.nan), metric) or {}
        row = {"dataset": dataset, "split": split, "model": recipe if setting == "full depth" else f"{recipe}: {setting}"}
        for column, heading in SHOWN[spec.layout]:
            if column not in points.columns:
                continue
            text = _format(means[column], column)
            if count[key] > 1 and text and not np.isnan(std.loc[key, column]) and column != "value":
                text += f" ± {_format(std.loc[key, column], column)}"
            row[heading.format(metric=metric)] = text
        if paper:
            paper["delta_vs_paper"] = means["delta_points"] - paper["paper_delta_points"]
        for column, heading in PAPER_SHOWN:
            row[heading.format(metric=metric)] = _format(paper.get(column), column)
        row["seeds"] = int(count[key])
        rows.append(row)
    return pd.DataFrame(rows)


def source_notes() -> list[str]:
    """One line per source of published numbers, for the table's notes."""
    sources, _ = published()
    return [f"{s['paper']}: {s['where']}." for s in sources.values()]
