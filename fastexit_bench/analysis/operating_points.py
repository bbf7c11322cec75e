"""Operating points: which (policy, value) settings a table shows, chosen once by the sweep on dev and
measured on the reported split; ``report`` and ``latency`` read them from the sweep's selection file.

A setting is either a fixed value (FastBERT's ``speed`` 0.1/0.5/0.8) or the value chosen on dev for a
target (DeeBERT's protocol: the fastest value within N metric points of full depth; or the most accurate
value reaching a speed-up). Every model also has its "full depth" point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fastexit_bench.analysis.artifact import ExitArtifact, LayerOutputs
from fastexit_bench.analysis.flops import ComponentFlops, fastbert_convention, flops_for
from fastexit_bench.analysis.risk import candidates, risk_controlled
from fastexit_bench.analysis.sweep import full_depth_metric, sweep
from fastexit_bench.metrics import direction

FULL_DEPTH = "full depth"


@dataclass(frozen=True)
class OperatingPointSpec:
    """The one owner of the operating-point defaults, read by the CLI, the workflow schema and the rules.

    Attributes:
        values: fixed values per policy, e.g. ``{"speed": (0.1, 0.5, 0.8)}``, shown beside the values dev
            chooses for it (so a table says at which speed a paper's claim holds here).
        max_drop: dev drop budgets in metric points: the fastest value within each one.
        min_speedup: required speed-ups: the most accurate value reaching each one.
        risk: risk budgets δ in accuracy points: the fastest value whose harm rate against full depth is <= δ
            with probability >= 1 - ``risk_epsilon`` over the selection sample (``analysis.risk``; accuracy
            only, since the harm of one example bounds an accuracy drop and no other metric's).
    """

    values: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    max_drop: tuple[float, ...] = (0.0, 1.0, 2.0)
    min_speedup: tuple[float, ...] = ()
    risk: tuple[float, ...] = (1.0,)
    risk_epsilon: float = 0.1

    def targets(self) -> list[Target]:
        return [Target("max_drop", v) for v in self.max_drop] + [
            Target("min_speedup", v) for v in self.min_speedup
        ]


@dataclass(frozen=True)
class Target:
    """A selection rule: ``max_drop`` (metric points below full depth on dev) or ``min_speedup``."""

    kind: str
    value: float

    def label(self) -> str:
        return {
            "max_drop": f"drop<={self.value:g}pt",
            "min_speedup": f"speedup>={self.value:g}x",
            "risk": f"risk<={self.value:g}pt",
        }[self.kind]


def within_drop(rows: pd.DataFrame, metric: str, reference: float, points: float) -> pd.Series:
    """Rows whose metric is at most ``points`` (x100) worse than ``reference``, whichever way is better."""
    return direction(metric) * (reference - rows[metric]) * 100 <= points + 1e-9


def _pick(policy: str, target: Target, row: pd.Series, metric: str, reference: float) -> dict[str, Any]:
    """A dev-chosen operating point: the policy, its target and value, and the dev numbers at that value."""
    return {
        "policy": policy,
        "target": target.label(),
        "value": row["value"],
        f"dev_{metric}": row[metric],
        "dev_speedup": row["speedup"],
        f"dev_full_{metric}": reference,
    }


def select(dev: pd.DataFrame, metric: str, targets: Sequence[Target]) -> pd.DataFrame:
    """Per policy and target, the dev-chosen value: fastest within the drop budget, or most accurate at
    the required speed-up (papers' protocol). Rows whose target no value meets are left out."""
    descending = direction(metric) > 0
    reference = full_depth_metric(dev, metric)
    chosen = []
    for policy, rows in dev.groupby("policy", sort=False):
        for target in targets:
            if target.kind == "max_drop":
                ok = rows[within_drop(rows, metric, reference, target.value)]
                best = ok.sort_values(["speedup", metric], ascending=[False, not descending])
            else:
                ok = rows[rows.speedup >= target.value]
                best = ok.sort_values([metric, "speedup"], ascending=[not descending, False])
            if not best.empty:
                chosen.append(_pick(policy, target, best.iloc[0], metric, reference))
    return pd.DataFrame(chosen)


def risk_controlled_points(
    dev: pd.DataFrame,
    metric: str,
    spec: OperatingPointSpec,
    outputs: LayerOutputs,
    policies: Mapping[str, Any],
) -> pd.DataFrame:
    """Per policy of the dev sweep and risk budget, the risk-controlled value among the swept ones (rows where
    no value is certified are left out); none for a headline metric other than accuracy."""
    if metric != "accuracy" or outputs.labels is None or not spec.risk:
        return pd.DataFrame()
    reference, chosen = full_depth_metric(dev, metric), []
    for policy, rows in dev.groupby("policy", sort=False):
        values = candidates(outputs, policies[policy], list(rows.value))
        for delta in spec.risk:
            value = risk_controlled(values, len(outputs.labels), delta, spec.risk_epsilon).value
            if value is not None:
                row = rows[rows.value == value].iloc[0]
                chosen.append(_pick(policy, Target("risk", delta), row, metric, reference))
    return pd.DataFrame(chosen)


def choose(
    dev: pd.DataFrame,
    metric: str,
    spec: OperatingPointSpec,
    outputs: LayerOutputs | None = None,
    policies: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Every operating point of one model from its dev sweep: full depth, each policy's dev-chosen values
    (``spec.targets()``, and with the dev ``outputs`` and fitted ``policies`` the risk-controlled ones), then
    its fixed values (``spec.values``). The oracle reads labels and gets none. Fixed values need not be on the
    dev grid, so they carry no dev numbers."""
    reference, depth = full_depth_metric(dev, metric), float(dev[dev.policy == "static"].value.max())
    rows = [
        {
            "policy": "static",
            "setting": FULL_DEPTH,
            "target": "",
            "value": depth,
            f"dev_{metric}": reference,
            "dev_speedup": 1.0,
            f"dev_full_{metric}": reference,
        }
    ]
    adaptive = dev[dev.policy != "oracle"]
    picks = [select(adaptive, metric, spec.targets())]
    if outputs is not None and policies is not None:
        picks.append(risk_controlled_points(adaptive, metric, spec, outputs, policies))
    for pick in pd.concat(picks).to_dict("records"):
        rows.append({**pick, "setting": f"{pick['policy']}, dev {pick['target']}"})
    for policy in (p for p in dev.policy.unique() if p in spec.values):
        rows += [
            {"policy": policy, "setting": f"{policy}={v:g}", "target": "fixed", "value": float(v)}
            for v in spec.values[policy]
        ]
    return pd.DataFrame(rows)


def measure(
    artifact: ExitArtifact,
    points: pd.DataFrame,
    policies: Mapping[str, Any],
    flops: ComponentFlops | None = None,
) -> pd.DataFrame:
    """Each operating point on ``artifact`` (the reported split): headline metric with its bootstrap interval
    and standard error, examples, speed-up, mean exit layer,
    FLOPs per example (fvcore at true lengths) and FLOPs in FastBERT's convention (Linear layers, 128 tokens).
    Columns are prefixed ``test_``; ``test_split`` names the split, which is dev when there is no other; on a
    shifted dataset (`evaluate --dataset`) ``dataset`` is the reported one and ``trained_on`` the model's."""
    meta = artifact.metadata
    metric, convention = meta.headline_metric, fastbert_convention(meta.architecture)
    flops = flops or flops_for(meta)
    measured = []
    for point in points.itertuples():
        policy = policies[point.policy]
        (row,) = sweep(artifact, [policy], {policy.name: [point.value]}, flops).to_dict("records")
        fastbert = (
            convention.per_example(np.array([row["mean_exit_layer"]]), np.zeros(1), policy.reads)[0]
            if convention is not None
            else np.nan
        )
        measured.append(
            {
                f"test_{metric}": row[metric],
                f"test_{metric}_low": row[f"{metric}_low"],
                f"test_{metric}_high": row[f"{metric}_high"],
                f"test_{metric}_se": row[f"{metric}_se"],
                "test_examples": row["examples"],
                "test_speedup": row["speedup"],
                "test_mean_exit_layer": row["mean_exit_layer"],
                "test_flops": row["flops_per_example"],
                "test_flops_fastbert": 2 * float(fastbert),
            }
        )
    keys = {
        "dataset": meta.dataset,
        "backbone": meta.backbone_name,
        "recipe": meta.recipe,
        "seed": meta.seed,
        "metric": metric,
        "test_split": meta.split,
        **({"trained_on": meta.trained_on} if meta.trained_on else {}),  # reported on a shifted dataset
    }
    return pd.concat([points.reset_index(drop=True).assign(**keys), pd.DataFrame(measured)], axis=1)
