"""A policy leaderboard over shared artefacts: every policy on every early-exit model found, ranked with
intervals over examples and seeds.

For each model (a selection and a reported artefact of one trained model) each policy is fitted on the
selection split and swept there and on the reported split over the same values. Three numbers per policy
and model, each on the reported split and on every bootstrap resample of its examples (the same resamples
for every policy, so differences are paired):

- ``gain``: ``gain_vs_static`` (``analysis.sweep.scores``): the mean metric gain, in points, of the policy's
  best value within a FLOPs budget over static truncation's, over budgets from layer 1 to full depth.
- ``elue``: ELUE's score with the dev-chosen points as the submission: the mean, over the values chosen on
  the selection split for each drop budget of ``MAX_DROPS``, of the reported metric minus static truncation's
  curve at the same FLOPs (linear between its layers), in points.
- the speed-up and reported drop at the value chosen on the selection split within 1 point (no interval).

Across models, a two-level bootstrap: per resample, each (experiment, dataset, recipe) draws its seeds with
replacement and averages them on that resample of the examples; the groups are then averaged. Wins, ties and
losses against another policy count the models where the paired interval of the gain difference lies above
0, contains it, or lies below it. Only models whose every exit was trained are ranked (``exit_policy`` set:
a baseline's untrained heads would give any policy a meaningless score), and the oracle, which reads labels,
is left out. numpy and pandas only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from fastexit_bench.analysis.artifact import ExitArtifact
from fastexit_bench.analysis.degenerate import check_model
from fastexit_bench.analysis.flops import flops_for
from fastexit_bench.analysis.operating_points import Target, select
from fastexit_bench.analysis.policies import ExitPolicy, ThresholdPolicy
from fastexit_bench.analysis.sweep import CURVE_POINTS
from fastexit_bench.analysis.sweep_artifact import fitted_policies
from fastexit_bench.analysis.uncertainty import LEVEL, RESAMPLES, bootstrap_weights, resampled
from fastexit_bench.io import sha256_file
from fastexit_bench.metrics import compute_metrics, direction
from fastexit_bench.provenance import Provenance
from fastexit_bench.records import VersionedRecord

MAX_DROPS = (0.0, 1.0, 2.0)
"""The selection-split drop budgets whose chosen values make up a policy's ELUE-style submission."""
SPEEDUP_DROP = 1.0
DENSE_QUANTILES = 101
"""A threshold policy is swept at this many quantiles of its signal besides its own grid (``swept_values``)."""
LEFT_OUT = ("oracle",)
RANKING_NUMBERS = (
    "gain_vs_static",
    "gain_low",
    "gain_high",
    "elue_score",
    "elue_low",
    "elue_high",
    "speedup_at_1pt",
    "drop_at_1pt",
    "wins/ties/losses",
)
SEED = 0


@dataclass(frozen=True)
class ModelArtefacts:
    """One trained model's two artefacts: thresholds are chosen on ``selection`` and reported on ``reported``."""

    group: str
    """Where its seeds are pooled: ``<artefacts' folder>:<dataset>:<recipe>:<backbone>``."""
    seed: int
    selection: Path
    reported: Path


def degenerate(selection: ExitArtifact) -> str | None:
    """Why a model cannot be ranked, or None: its full depth within noise of the majority class on the
    ``selection`` split (``analysis.degenerate``), where any exit looks as good as any other."""
    outputs, metric = selection.predictions, selection.metadata.headline_metric
    check = check_model(outputs, metric, bootstrap_weights(len(outputs.labels)))
    return check.describe() if check.degenerate else None


@dataclass
class PolicyOnModel:
    """One policy on one model: its three scores on the reported split (index 0) and on each resample."""

    policy: str
    gain: np.ndarray
    elue: np.ndarray
    speedup: float
    drop: float


def _resampled_metrics(
    metric: str, chosen: np.ndarray, labels: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """``[rows, 1 + resamples]``: the metric of each row of predictions on the examples, then per resample."""
    every = np.vstack([np.ones((1, weights.shape[1]), np.float32), weights])
    if metric == "accuracy":  # one matrix product for every row
        correct = (chosen == labels[None, :]).astype(np.float32)
        return (correct @ every.T) / every.sum(1)[None, :]
    return np.stack([resampled(metric, row, labels, every) for row in chosen])


def _curves(cost: np.ndarray, scores: np.ndarray, budgets: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """``[budgets, resamples]``: the best score among rows costing at most each budget (``floor`` if none)."""
    order = np.argsort(cost, kind="stable")
    best = np.maximum.accumulate(scores[order], axis=0)
    index = np.searchsorted(cost[order], budgets, side="right") - 1
    return np.where(index[:, None] >= 0, best[np.clip(index, 0, None)], floor[None, :])


def _on_static_curve(cost: np.ndarray, static_cost: np.ndarray, static_scores: np.ndarray) -> np.ndarray:
    """``[points, resamples]``: static truncation's score at each cost, linear between its layers and held
    at its ends (``static_cost`` increasing)."""
    right = np.clip(np.searchsorted(static_cost, cost), 1, len(static_cost) - 1)
    left = right - 1
    t = np.clip((cost - static_cost[left]) / (static_cost[right] - static_cost[left]), 0.0, 1.0)
    return (1 - t)[:, None] * static_scores[left] + t[:, None] * static_scores[right]


def swept_values(policy: ExitPolicy, selection: ExitArtifact) -> list[float]:
    """The values a policy is swept at: its own grid and, for a threshold policy, the quantiles of its signal
    on the selection split's layers before the last, within its bounds. The built-in grids are 11-13 evenly
    spaced values, where most examples' entropy sits near 0: a coarse grid's frontier lags between its
    points, and would rank policies by grid resolution instead of by their decisions."""
    own = policy.checked_grid(selection.predictions)
    if not isinstance(policy, ThresholdPolicy) or selection.predictions.num_layers < 2:
        return own
    signal = policy.signal(selection.predictions)[:-1].ravel()
    dense = np.quantile(signal, np.linspace(0.0, 1.0, DENSE_QUANTILES))
    if policy.bounds:
        dense = np.clip(dense, *policy.bounds)
    return sorted(set(own) | {float(v) for v in dense})


def score_model(
    model: ModelArtefacts,
    selection: ExitArtifact,
    requested: Sequence[str] | None,
    log: Callable[[str], None] = print,
) -> list[PolicyOnModel]:
    """Every policy on one model, whose ``selection`` artefact is loaded already (see the module docstring);
    ``requested``: policy names or import paths (None: the defaults that apply), static added."""
    reported = ExitArtifact.load(model.reported)
    metric, sign = reported.metadata.headline_metric, direction(reported.metadata.headline_metric)
    policies = {
        name: policy
        for name, policy in fitted_policies(selection, requested, log).items()
        if name not in LEFT_OUT
    }
    flops, outputs = flops_for(reported.metadata), reported.predictions
    weights = bootstrap_weights(len(outputs.labels), RESAMPLES)
    full = flops.full_depth(outputs.num_layers, reported.lengths).mean()
    predictions, columns = outputs.predictions(), np.arange(len(outputs.labels))
    swept: dict[str, tuple[list[float], np.ndarray, np.ndarray]] = {}
    for name, policy in policies.items():
        grid = swept_values(policy, selection)
        exits = policy.sweep_exit_layers(outputs, grid)
        cost = np.array([flops.per_example(e, reported.lengths, policy.reads).mean() / full for e in exits])
        chosen = np.stack([predictions[e - 1, columns] for e in exits])
        swept[name] = (grid, cost, sign * _resampled_metrics(metric, chosen, outputs.labels, weights))
    static_values, static_cost, static_scores = swept["static"]
    budgets = np.linspace(static_cost.min(), 1.0, CURVE_POINTS)
    floor = static_scores[int(np.argmin(static_values))]
    reference = _curves(static_cost, static_scores, budgets, floor)
    full_score = static_scores[int(np.argmax(static_values))][0]
    dev_sweep = _dev_sweep(selection, policies, {n: s[0] for n, s in swept.items()}, metric)
    dev_picks = select(dev_sweep, metric, [Target("max_drop", d) for d in MAX_DROPS])
    results = []
    for name, (grid, cost, scores) in swept.items():
        gain = 100 * (_curves(cost, scores, budgets, floor) - reference).mean(0)
        picks = dev_picks[dev_picks.policy == name]
        rows = [grid.index(v) for v in picks.value] if not picks.empty else []
        elue = (
            100 * (scores[rows] - _on_static_curve(cost[rows], static_cost, static_scores)).mean(0)
            if rows
            else np.full(scores.shape[1], np.nan)
        )
        at_one = picks[picks.target == Target("max_drop", SPEEDUP_DROP).label()]
        row = grid.index(at_one.value.iloc[0]) if not at_one.empty else None
        results.append(
            PolicyOnModel(
                name,
                gain,
                elue,
                speedup=float(1 / cost[row]) if row is not None else np.nan,
                drop=float(100 * (full_score - scores[row, 0])) if row is not None else np.nan,
            )
        )
    return results


def _dev_sweep(
    selection: ExitArtifact, policies: dict[str, ExitPolicy], values: dict[str, list[float]], metric: str
) -> pd.DataFrame:
    """The selection split's metric and speed-up at every swept value: what the dev-chosen points come from."""
    flops, outputs = flops_for(selection.metadata), selection.predictions
    full = flops.full_depth(outputs.num_layers, selection.lengths).mean()
    predictions, columns = outputs.predictions(), np.arange(len(outputs.labels))
    rows = []
    for name, policy in policies.items():
        for value, exits in zip(values[name], policy.sweep_exit_layers(outputs, values[name])):
            cost = flops.per_example(exits, selection.lengths, policy.reads).mean()
            chosen = predictions[exits - 1, columns]
            rows.append(
                {
                    "policy": name,
                    "value": value,
                    metric: compute_metrics((metric,), chosen, outputs.labels)[metric],
                    "speedup": full / cost,
                }
            )
    return pd.DataFrame(rows)


def _mean_of_known(values: np.ndarray) -> float:
    """The mean of the values that are not NaN (models where no value met the target have none); NaN if none."""
    known = values[~np.isnan(values)]
    return float(known.mean()) if len(known) else float("nan")


def _interval(samples: np.ndarray) -> tuple[float, float]:
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.nanpercentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def _pooled(per_model: dict[ModelArtefacts, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """``[1 + resamples]``: the mean over groups of the mean over seeds; entry 0 from the reported split
    itself, the others drawing each group's seeds with replacement on that resample of the examples."""
    groups: dict[str, list[np.ndarray]] = {}
    for model, values in per_model.items():
        groups.setdefault(model.group, []).append(values)
    columns = next(iter(per_model.values())).shape[0]
    pooled = np.zeros(columns)
    for seeds in groups.values():
        stacked = np.stack(seeds)  # [seeds, 1 + resamples]
        drawn = rng.integers(0, len(seeds), size=(len(seeds), columns))
        drawn[:, 0] = np.arange(len(seeds))
        pooled += np.nanmean(np.take_along_axis(stacked, drawn, axis=0), axis=0)
    return pooled / len(groups)


@dataclass
class LeaderboardRecord(VersionedRecord):
    """``leaderboard.json``: the ranking in numbers and what it was computed from (``left_out``: degenerate
    models, with why)."""

    models: list[str]
    left_out: list[str]
    policies: list[str]
    ranking: list[dict]
    resamples: int
    level: float
    max_drops: list[float]
    provenance: Provenance = field(default_factory=Provenance)

    VERSION: ClassVar[int] = 1
    RERUN: ClassVar[str] = "fastexit-bench leaderboard"


@dataclass
class Leaderboard:
    """The ranked table (one row per policy), wins/ties/losses per pair, each model's scores, the record."""

    ranking: pd.DataFrame
    head_to_head: pd.DataFrame
    per_model: pd.DataFrame
    record: LeaderboardRecord


def rank(scored: dict[ModelArtefacts, list[PolicyOnModel]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ranking and wins/ties/losses of each policy (row) against each other one (column) over the models
    both apply to. Policies that apply to every model are ranked by pooled gain over static, best first; one
    that applies to fewer (``learned`` needs BERxiT's scorer) follows, unranked: its mean is over other models."""
    if not scored:
        return pd.DataFrame(columns=["rank", "policy", "models", *RANKING_NUMBERS]), pd.DataFrame()
    rng = np.random.default_rng(SEED)
    by_policy: dict[str, dict[ModelArtefacts, PolicyOnModel]] = {}
    for model, results in scored.items():
        for result in results:
            by_policy.setdefault(result.policy, {})[model] = result
    rows = []
    for name, models in by_policy.items():
        gain = _pooled({m: r.gain for m, r in models.items()}, rng)
        elue = _pooled({m: r.elue for m, r in models.items()}, rng)
        speedups = np.array([r.speedup for r in models.values()])
        drops = np.array([r.drop for r in models.values()])
        rows.append(
            {
                "policy": name,
                "models": len(models),
                "gain_vs_static": gain[0],
                "gain_low": _interval(gain[1:])[0],
                "gain_high": _interval(gain[1:])[1],
                "elue_score": elue[0],
                "elue_low": _interval(elue[1:])[0],
                "elue_high": _interval(elue[1:])[1],
                "speedup_at_1pt": float(np.exp(_mean_of_known(np.log(speedups)))),
                "drop_at_1pt": _mean_of_known(drops),
            }
        )
    ranking = pd.DataFrame(rows)
    everywhere = ranking.models == ranking.models.max()
    ranking = ranking.assign(everywhere=everywhere).sort_values(
        ["everywhere", "gain_vs_static"], ascending=False, ignore_index=True
    )
    ranked = int(ranking.everywhere.sum())
    ranks = [*range(1, ranked + 1), *[None] * (len(ranking) - ranked)]
    ranking.insert(0, "rank", pd.array(ranks, dtype="Int64"))
    ranking = ranking.drop(columns="everywhere")
    order = list(ranking.policy)
    matrix = pd.DataFrame(index=order, columns=order, dtype=object)
    for first in order:
        for second in order:
            common = [m for m in by_policy[first] if m in by_policy[second]]
            outcomes = [
                _interval(by_policy[first][m].gain[1:] - by_policy[second][m].gain[1:]) for m in common
            ]
            wins = sum(low > 0 for low, _ in outcomes)
            losses = sum(high < 0 for _, high in outcomes)
            matrix.loc[first, second] = (
                "" if first == second else f"{wins}/{len(common) - wins - losses}/{losses}"
            )
    ranking["wins/ties/losses"] = [
        "/".join(str(sum(int(cell.split("/")[i]) for cell in matrix.loc[p] if cell)) for i in range(3))
        for p in order
    ]
    return ranking, matrix.rename_axis("policy").reset_index()


def leaderboard(
    found: Sequence[ModelArtefacts],
    requested: Sequence[str] | None,
    config: dict,
    log: Callable[[str], None] = print,
) -> Leaderboard:
    """Every policy (``requested`` names or import paths, None: the defaults) on every model ``found``
    (early-exit models: ``reporting.leaderboard.find_models``), degenerate ones left out, ranked."""
    from fastexit_bench import provenance

    selections, left_out = {}, []
    for model in found:
        selection = ExitArtifact.load(model.selection)
        reason = degenerate(selection)
        if reason:
            log(f"leaving out {model.reported}: {reason}")
            left_out.append(f"{model.reported}: {reason}")
        else:
            selections[model] = selection
    models = list(selections)
    if not models:
        log("warning: every early-exit model found is degenerate (see above): the leaderboard ranks nothing")
    scored = {}
    for number, model in enumerate(models, start=1):
        log(f"[{number}/{len(models)}] {model.reported}")
        scored[model] = score_model(model, selections[model], requested, log)
    ranking, head_to_head = rank(scored)
    per_model = pd.DataFrame(
        [
            {
                "model": str(model.reported),
                "group": model.group,
                "seed": model.seed,
                "policy": result.policy,
                "gain_vs_static": result.gain[0],
                "elue_score": result.elue[0],
                "speedup_at_1pt": result.speedup,
                "drop_at_1pt": result.drop,
            }
            for model, results in scored.items()
            for result in results
        ]
    )
    record = LeaderboardRecord(
        models=[str(m.reported) for m in models],
        left_out=left_out,
        policies=list(ranking.policy),
        ranking=ranking.astype(object).where(ranking.notna(), None).to_dict("records"),
        resamples=RESAMPLES,
        level=LEVEL,
        max_drops=list(MAX_DROPS),
        provenance=provenance.collect(
            config=config, inputs={str(p): sha256_file(p) for m in models for p in (m.selection, m.reported)}
        ),
    )
    return Leaderboard(ranking, head_to_head, per_model, record)
