"""Threshold sweeps over a saved evaluation artefact, paper-style parameter selection, and one-number scores.

Everything here reads only :class:`~fastexit_bench.analysis.artifact.ExitArtifact` files: a sweep of any
number of policies and values costs no forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fastexit_bench.errors import FastExitError
from fastexit_bench.analysis.artifact import ExitArtifact
from fastexit_bench.analysis.flops import ComponentFlops, flops_for
from fastexit_bench.analysis.metrics import METRICS, compute_metrics
from fastexit_bench.analysis.policies import ExitPolicy, LayerOutputs

CURVE_POINTS = 1001


def layer_outputs(artifact: ExitArtifact) -> LayerOutputs:
    p = artifact.predictions
    return LayerOutputs(p.logits, artifact.metadata["task"], p.exit_scores, p.labels)


def sweep(artifact: ExitArtifact, policies: Sequence[ExitPolicy], grids: dict[str, Sequence[float]] | None = None,
          flops: ComponentFlops | None = None) -> pd.DataFrame:
    """One row per (policy, value): metrics at the exit layer, mean exit layer, exit-layer shares,
    expected MACs and FLOPs per example at the true token lengths and padded to the max length,
    FLOPs relative to the full-depth model, and speed-up (both at true lengths)."""
    meta, outputs = artifact.metadata, layer_outputs(artifact)
    if outputs.labels is None:
        raise FastExitError("the artefact has no labels, so a sweep has no metric to report")
    flops = flops or flops_for(meta)
    full = flops.full_depth(outputs.num_layers, artifact.lengths).mean()
    padded = np.full(len(artifact.lengths), meta.get("max_length", int(artifact.lengths.max())))
    predictions = outputs.predictions()
    columns = np.arange(predictions.shape[1])
    rows = []
    for policy in policies:
        values = list((grids or {}).get(policy.name) or policy.grid(outputs))
        for value, exits in zip(values, policy.sweep_exit_layers(outputs, values)):
            cost = flops.per_example(exits, artifact.lengths, policy.reads).mean()
            cost_padded = flops.per_example(exits, padded, policy.reads).mean()
            shares = np.bincount(exits, minlength=outputs.num_layers + 1)[1:] / len(exits)
            rows.append({
                "dataset": meta["dataset"], "split": meta["split"], "recipe": meta["recipe"],
                "backbone": meta["backbone"]["requested"], "seed": meta["seed"],
                "policy": policy.name, "parameter": policy.parameter, "value": float(value),
                "headline_metric": meta["metrics"][0],
                **compute_metrics(tuple(meta["metrics"]), predictions[exits - 1, columns], outputs.labels),
                "mean_exit_layer": float(exits.mean()),
                **{f"exit_share_{k}": float(share) for k, share in enumerate(shares, start=1)},
                "macs_per_example": float(cost), "flops_per_example": 2 * float(cost),
                "flops_per_example_padded": 2 * float(cost_padded), "relative_flops": float(cost / full), "speedup": float(full / cost),
                "flops_source": flops.source,
            })
    return pd.DataFrame(rows)


def full_depth_metric(table: pd.DataFrame, metric: str) -> float:
    """The metric of the plain model: ``static`` at its last layer."""
    static = table[table.policy == "static"]
    if static.empty:
        raise FastExitError("selection and scores are relative to the 'static' policy; include it in the sweep")
    return float(static.loc[static.value.idxmax(), metric])


def within_drop(rows: pd.DataFrame, metric: str, reference: float, points: float) -> pd.Series:
    """Rows whose metric is at most ``points`` (x100) worse than ``reference``, whichever way is better."""
    sign = 1.0 if METRICS.get(metric).higher_is_better else -1.0
    return sign * (reference - rows[metric]) * 100 <= points + 1e-9


@dataclass(frozen=True)
class Target:
    """A selection rule: ``max_drop`` (metric points below full depth on dev) or ``min_speedup``."""

    kind: str
    value: float

    def label(self) -> str:
        return f"drop<={self.value:g}pt" if self.kind == "max_drop" else f"speedup>={self.value:g}x"


def select(dev: pd.DataFrame, metric: str, targets: Sequence[Target]) -> pd.DataFrame:
    """Per policy and target, the dev-chosen value: fastest within the drop budget, or most accurate at
    the required speed-up (papers' protocol). Rows whose target no value meets are left out."""
    sign = 1.0 if METRICS.get(metric).higher_is_better else -1.0
    reference = full_depth_metric(dev, metric)
    chosen = []
    for policy, rows in dev.groupby("policy", sort=False):
        for target in targets:
            if target.kind == "max_drop":
                ok = rows[within_drop(rows, metric, reference, target.value)]
                best = ok.sort_values(["speedup", metric], ascending=[False, sign < 0])
            else:
                ok = rows[rows.speedup >= target.value]
                best = ok.sort_values([metric, "speedup"], ascending=[sign < 0, False])
            if not best.empty:
                row = best.iloc[0]
                chosen.append({"policy": policy, "target": target.label(), "value": row["value"],
                               f"dev_{metric}": row[metric], "dev_speedup": row["speedup"],
                               f"dev_full_{metric}": reference})
    return pd.DataFrame(chosen)


def apply_selection(chosen: pd.DataFrame, held_out: ExitArtifact, policies: dict[str, ExitPolicy],
                    flops: ComponentFlops | None = None) -> pd.DataFrame:
    """Report each dev-chosen (policy, value) on the held-out artefact."""
    metric = held_out.metadata["metrics"][0]
    rows = []
    for _, pick in chosen.iterrows():
        (test,) = sweep(held_out, [policies[pick.policy]], {pick.policy: [pick.value]}, flops).to_dict("records")
        rows.append({**pick.to_dict(), f"test_{metric}": test[metric], "test_speedup": test["speedup"],
                     "test_split": held_out.metadata["split"]})
    return pd.DataFrame(rows)


def _budget_curve(x: np.ndarray, y: np.ndarray, budgets: np.ndarray, floor: float) -> np.ndarray:
    """Best metric reachable within each relative-FLOPs budget (``floor`` where nothing fits)."""
    order = np.argsort(x, kind="stable")
    xs, best = x[order], np.maximum.accumulate(y[order])
    index = np.searchsorted(xs, budgets, side="right") - 1
    return np.where(index >= 0, best[np.clip(index, 0, None)], floor)


def scores(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One number per policy (ELUE-style): the area of its metric-vs-relative-FLOPs budget curve above
    static truncation's layer-1 metric, divided by static's own area, over static's FLOPs range (layer 1
    .. full depth). 1 matches truncation, > 1 beats it. Lower-is-better metrics are negated first.
    Also the largest speed-up that keeps the full-depth metric."""
    sign = 1.0 if METRICS.get(metric).higher_is_better else -1.0
    full = full_depth_metric(table, metric)
    static = table[table.policy == "static"]
    budgets = np.linspace(static.relative_flops.min(), 1.0, CURVE_POINTS)
    floor = sign * float(static.loc[static.value.idxmin(), metric])

    def area(rows: pd.DataFrame) -> float:
        curve = _budget_curve(rows.relative_flops.to_numpy(), sign * rows[metric].to_numpy(), budgets, floor)
        return float(np.trapezoid(curve - floor, budgets))

    base = area(static)
    return pd.DataFrame([
        {"policy": policy, "metric": metric, "auc_vs_static": area(rows) / base if base > 0 else np.nan,
         "best_speedup_at_full_metric": rows.loc[sign * rows[metric] >= sign * full - 1e-12, "speedup"].max()}
        for policy, rows in table.groupby("policy", sort=False)
    ])
