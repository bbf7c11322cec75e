"""Paper-layout tables: every model of an experiment at its paper's operating points, beside the
numbers the papers' authors published.

A model that always runs to the end (baseline, truncated-k) is one row. An early-exit model is one row
per operating point of its paper's exit policy (``Recipe.exit_policy``), as the sweep chose and measured
it: fixed values, as in FastBERT's ``speed`` 0.1/0.5/0.8, or values chosen on the dev split, as in
DeeBERT's thresholds (fastest value within N metric points of full depth). Rows are reported on the
held-out split when the dataset has one (dev otherwise), with FLOPs in FastBERT's convention and the
fvcore count, the change against the experiment's baseline, and the published numbers of
``published.yaml`` with their source.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from fastexit_bench.analysis.artifact import ExitArtifact, ModelIdentity
from fastexit_bench.analysis.flops import flops_for
from fastexit_bench.analysis.operating_points import FULL_DEPTH
from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.analysis.sweep import SELECTION_COLUMNS, SweepFiles, read_sweep_csv
from fastexit_bench.analysis.uncertainty import bootstrap_weights, difference_interval
from fastexit_bench.data.spec import is_partial
from fastexit_bench.errors import FastExitError
from fastexit_bench.metrics import compute_metrics, direction
from fastexit_bench.pooling import LABELS as POOLING_LABELS
from fastexit_bench.reporting.tables import (
    HIGH,
    LOW,
    artifacts_by_run,
    mean_pm_std,
    paper_policy,
    with_interval,
)
from fastexit_bench.runtime.config import LATENCY_BATCH_SIZES

PUBLISHED = Path(__file__).with_name("published.yaml")
Z95 = 1.959964  # the normal quantile of a two-sided 95% interval
NOT_SIGNIFICANT = "ns"  # marks a Δ whose 95% interval contains 0
LAYOUTS = ("fastbert", "deebert")


@dataclass(frozen=True)
class TableSpec:
    """How an experiment's paper table is laid out; its operating points come from the sweeps' selection
    (:class:`~fastexit_bench.analysis.operating_points.OperatingPointSpec`).

    ``reference`` is the recipe whose full-depth point every row is measured against: a separately
    fine-tuned ``baseline`` (DeeBERT, PABEE), or the early-exit model's own full depth (FastBERT's "BERT"
    row is its teacher: ``reference: fastbert``)."""

    layout: str = "deebert"
    reference: str = "baseline"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise FastExitError(f"paper table layout {self.layout!r} is not one of {LAYOUTS}")


def paper_points(selection: pd.DataFrame, reference: str | None = None) -> pd.DataFrame:
    """Each model's operating points at its paper's exit policy (``Recipe.exit_policy``; full depth for a
    model that always runs to the end), and the ``reference`` recipe's full depth, from the sweeps' selection
    files, with the reported split's numbers."""
    kept = []
    for recipe, rows in selection.groupby("recipe", sort=False):
        policy = paper_policy(recipe)
        full = rows.setting == FULL_DEPTH
        kept.append(rows[(rows.policy == policy) | (full & (recipe == reference))] if policy else rows[full])
    chosen = pd.concat(kept) if kept else selection.iloc[:0]

    def reported(suffix: str) -> list[float]:
        return [row[f"test_{row.metric}{suffix}"] for _, row in chosen.iterrows()]

    return pd.DataFrame(
        {
            "dataset": chosen.dataset,
            "split": chosen.test_split,
            "recipe": chosen.recipe,
            "setting": chosen.setting,
            "backbone": chosen.backbone,
            "policy": chosen.policy,
            "seed": chosen.seed,
            "metric": chosen.metric,
            "value": chosen.value,
            "score": reported(""),
            "score_low": reported("_low"),
            "score_high": reported("_high"),
            "score_se": reported("_se"),
            "examples": chosen.test_examples,
            "degenerate": chosen.degenerate,
            "mean_exit_layer": chosen.test_mean_exit_layer,
            "flops": chosen.test_flops,
            "flops_fastbert": chosen.test_flops_fastbert,
        }
    ).reset_index(drop=True)


def timed_points(
    selection_csv: Path, model: ModelIdentity
) -> tuple[str | None, list[tuple[str, str, float]]]:
    """What `latency` times for ``model``: the reported split of its sweep's selection file and the
    ``(setting, policy, value)`` of its paper operating points that exit early (the paper table's rows). A
    selection of another model (or a sweep not whole) is refused: its points would be timed on the wrong model."""
    model.check_same(SweepFiles.of_selection(selection_csv).model(), "the model timed", selection_csv)
    chosen = paper_points(read_sweep_csv(selection_csv, SELECTION_COLUMNS))
    points = [(row.setting, row.policy, row.value) for row in chosen.itertuples() if row.policy != "static"]
    return (str(chosen.split.iloc[0]) if len(chosen) else None), points


def against_baseline(points: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Metric change (points) with its 95% interval, and speed-ups, against the same seed's ``reference`` recipe
    at full depth, by both FLOPs counts. The interval combines the two bootstrap standard errors as if the
    models were independent (normal approximation): wider than a paired interval, since two models scored on
    the same examples err together (:func:`paired_deltas` pairs them when the artefacts are at hand); the
    reference's own row has none."""
    baseline = points[(points.recipe == reference) & (points.setting == FULL_DEPTH)].set_index(
        ["dataset", "seed"]
    )
    if baseline.empty:
        raise FastExitError(
            f"a paper table compares against the full depth of recipe {reference!r} and no sweep given is of "
            f"it: pass its sweep (--sweeps; in the workflow, add {reference!r} to the experiment's recipes), or "
            "name another recipe (--reference; table.reference)"
        )
    base = baseline.loc[list(zip(points.dataset, points.seed))]
    delta = 100 * (points.score.to_numpy() - base.score.to_numpy())
    itself = ((points.recipe == reference) & (points.setting == FULL_DEPTH)).to_numpy()
    half = np.where(
        itself, np.nan, 100 * Z95 * np.hypot(points.score_se.to_numpy(), base.score_se.to_numpy())
    )
    return points.assign(
        delta_points=delta,
        delta_points_low=delta - half,
        delta_points_high=delta + half,
        speedup=base.flops.to_numpy() / points.flops.to_numpy(),
        speedup_fastbert=base.flops_fastbert.to_numpy() / points.flops_fastbert.to_numpy(),
    )


def paired_deltas(points: pd.DataFrame, reference: str, artifacts: Sequence[ExitArtifact]) -> pd.DataFrame:
    """``points`` (from :func:`against_baseline`) with each Δ's interval replaced by a paired bootstrap interval
    where both models' artefacts of the reported split are given and hold the same examples: the two are
    scored on the same resamples, so the noise they share cancels. Other rows keep the unpaired interval."""
    by_key = artifacts_by_run(artifacts)
    low, high = points.delta_points_low.to_numpy().copy(), points.delta_points_high.to_numpy().copy()
    for i, row in enumerate(points.itertuples()):
        mine = by_key.get((row.dataset, row.split, row.recipe, row.seed))
        base = by_key.get((row.dataset, row.split, reference, row.seed))
        if mine is None or base is None or np.isnan(low[i]):
            continue
        labels = mine.predictions.labels
        if (
            labels is None
            or base.predictions.labels is None
            or not np.array_equal(labels, base.predictions.labels)
        ):
            continue
        exits = resolve_policy(row.policy).exit_layers(mine.predictions, row.value)
        chosen = mine.predictions.predictions()[exits - 1, np.arange(len(exits))]
        interval = difference_interval(
            row.metric, chosen, base.predictions.predictions()[-1], labels, bootstrap_weights(len(labels))
        )
        low[i], high[i] = 100 * interval.low, 100 * interval.high
    return points.assign(delta_points_low=low, delta_points_high=high)


STATIC_ALTERNATIVE_COLUMNS = (
    "static_alternative",
    "static_alternative_flops",
    "gain_vs_static_points",
    "gain_vs_static_points_low",
    "gain_vs_static_points_high",
)


def _static_candidates(
    row: Any, mine: ExitArtifact, dev: ExitArtifact, points: pd.DataFrame, by_key: dict
) -> list[tuple[str, float, float, np.ndarray]]:
    """What costs no more than ``row``'s operating point without deciding per example: the same model's static
    exits and the experiment's models that always run to full depth (truncated, distilled, the baseline), each
    as (name, test FLOPs, dev metric, test predictions)."""
    sign = direction(row.metric)
    flops = flops_for(mine.metadata)
    static = resolve_policy("static")
    candidates = []
    for layer in range(1, mine.predictions.num_layers + 1):
        exits = np.full(len(mine.lengths), layer)
        cost = 2 * float(flops.per_example(exits, mine.lengths, static.reads).mean())
        dev_score = dev.metadata.layer_metrics[layer - 1][row.metric] if dev.metadata.layer_metrics else None
        if cost <= row.flops * (1 + 1e-9) and dev_score is not None:
            candidates.append(
                (f"layer {layer}", cost, sign * dev_score, mine.predictions.predictions()[layer - 1])
            )
    fixed = points[
        (points.dataset == row.dataset)
        & (points.seed == row.seed)
        & (points.setting == FULL_DEPTH)
        & (points.recipe != row.recipe)
        & (points.flops <= row.flops * (1 + 1e-9))
    ]
    for other in fixed.itertuples():
        if paper_policy(other.recipe) is not None:
            continue
        test = by_key.get((other.dataset, other.split, other.recipe, other.seed))
        other_dev = next(
            (
                a
                for key, a in by_key.items()
                if key[0] == other.dataset and key[1] != other.split and key[2:] == (other.recipe, other.seed)
            ),
            None,
        )
        if test is None or other_dev is None or not other_dev.metadata.layer_metrics:
            continue
        if not np.array_equal(test.predictions.labels, mine.predictions.labels):
            continue
        dev_score = other_dev.metadata.layer_metrics[-1][row.metric]
        candidates.append(
            (other.recipe, float(other.flops), sign * dev_score, test.predictions.predictions()[-1])
        )
    return candidates


def with_static_alternative(points: pd.DataFrame, artifacts: Sequence[ExitArtifact]) -> pd.DataFrame:
    """For each early-exit operating point (a model at its paper's policy), the cheapest alternative that does
    not decide per example: among the same model's static exits and the experiment's fixed-depth models whose
    FLOPs do not exceed the point's, the one best on the selection split (dev), and the point's metric gain over
    it on the reported split with a paired 95 % bootstrap interval (points). Early exit adds something where
    that interval lies above 0; rows that are not early-exit points, or lack artefacts, get none."""
    by_key = artifacts_by_run(artifacts)
    columns: dict[str, list] = {name: [] for name in STATIC_ALTERNATIVE_COLUMNS}
    for row in points.itertuples():
        mine = by_key.get((row.dataset, row.split, row.recipe, row.seed))
        dev = next(
            (
                a
                for key, a in by_key.items()
                if key[0] == row.dataset and key[1] != row.split and key[2:] == (row.recipe, row.seed)
            ),
            None,
        )
        found = None
        if row.policy == paper_policy(row.recipe) and mine is not None and dev is not None:
            candidates = _static_candidates(row, mine, dev, points, by_key)
            if candidates and mine.predictions.labels is not None:
                name, cost, _, predictions = max(candidates, key=lambda c: c[2])
                exits = resolve_policy(row.policy).exit_layers(mine.predictions, row.value)
                chosen = mine.predictions.predictions()[exits - 1, np.arange(len(exits))]
                labels = mine.predictions.labels
                scores = [
                    compute_metrics((row.metric,), p, labels)[row.metric] for p in (chosen, predictions)
                ]
                interval = difference_interval(
                    row.metric, chosen, predictions, labels, bootstrap_weights(len(labels))
                )
                sign = direction(row.metric)
                found = (
                    name,
                    cost,
                    sign * 100 * (scores[0] - scores[1]),
                    *sorted((sign * 100 * interval.low, sign * 100 * interval.high)),
                )
        for name, value in zip(STATIC_ALTERNATIVE_COLUMNS, found or ("", np.nan, np.nan, np.nan, np.nan)):
            columns[name].append(value)
    return points.assign(**columns)


@cache
def published() -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The published-numbers file: sources by key, and rows."""
    data = yaml.safe_load(PUBLISHED.read_text(encoding="utf-8"))
    return data["sources"], data["rows"]


FAMILY_SUFFIX = re.compile(r"-(uncased|cased|chinese|multilingual|v[0-9]+)$")


def backbone_family(backbone: str) -> str:
    """The family a published number must share with ours: the model's name without its organisation,
    casing, language or version (``google-bert/bert-base-uncased`` -> ``bert-base``, ``albert/albert-base-v2``
    -> ``albert-base``); the offline backbones keep their names (``minilm-l6``, ``me5-small``)."""
    name = backbone.rstrip("/").rsplit("/", 1)[-1].lower()
    while FAMILY_SUFFIX.search(name):
        name = FAMILY_SUFFIX.sub("", name)
    return name


def _published_rows(dataset: str, recipe: str, policy: str, value: float) -> list[dict[str, Any]]:
    """Published rows of one (dataset, method, operating point), whatever their backbone."""
    _, rows = published()
    return [
        row
        for row in rows
        if (row["dataset"], row["recipe"]) == (dataset, recipe)
        and row.get("policy", policy) == policy
        and (row.get("value") is None or np.isclose(row["value"], value))
    ]


def _family_of(row: dict[str, Any]) -> str:
    sources, _ = published()
    return row.get("family", sources[row["source"]]["family"])


def published_effect(row: dict[str, Any], metric: str | None = None) -> tuple[float, float, float | None]:
    """A published row's score (``metric``, else its headline), its change in points against the same source's
    baseline, and its speed-up (the row's own, else the FLOPs ratio in FastBERT's convention)."""
    _, rows = published()
    base = next(
        r
        for r in rows
        if (r["source"], r["dataset"], r.get("backbone"))
        == (row["source"], row["dataset"], row.get("backbone"))
        and r["recipe"] == "baseline"
    )
    metric = metric or next(k for k in ("accuracy", "f1", "score") if k in row)
    score, base_score = row.get(metric, row.get("score")), base.get(metric, base.get("score"))
    speedup = row.get("speedup") or (
        base["flops_fastbert"] / row["flops_fastbert"] if "flops_fastbert" in row else None
    )
    return score, 100 * (score - base_score), speedup


def published_for(
    dataset: str, recipe: str, policy: str, value: float, metric: str, backbone: str
) -> dict[str, Any] | None:
    """The published numbers for one of our rows (and the paper's own baseline, for its deltas), only from
    the same backbone family: a number from another family is not comparable (:func:`other_backbone_notes`)."""
    sources, _ = published()
    for row in _published_rows(dataset, recipe, policy, value):
        if _family_of(row) != backbone_family(backbone):
            continue
        score, delta, speedup = published_effect(row, metric)
        source = sources[row["source"]]
        return {
            "paper_score": score,
            "paper_delta_points": delta,
            "paper_speedup": speedup,
            "paper_flops_fastbert": row.get("flops_fastbert"),
            "paper_source": f"{source['paper']}, {row.get('backbone', source.get('backbone', ''))}".strip(
                ", "
            ),
        }
    return None


SHOWN = {  # layout -> (column, heading) in the paper's order
    "fastbert": [
        ("score", "{metric} [95% CI]"),
        ("flops_fastbert", "FLOPs (M, FastBERT conv.)"),
        ("speedup_fastbert", "speed-up (FastBERT conv.)"),
        ("speedup", "speed-up (fvcore)"),
        ("delta_points", "Δ vs baseline (pt) [95% CI]"),
        *((f"realized_b{b}", f"realized speed-up b{b}") for b in LATENCY_BATCH_SIZES),
    ],
    "deebert": [
        ("value", "threshold"),
        ("score", "{metric} [95% CI]"),
        ("delta_points", "Δ vs baseline (pt) [95% CI]"),
        ("time_saving", "time saving (FLOPs)"),
        *((f"realized_saving_b{b}", f"time saving b{b} (measured)") for b in LATENCY_BATCH_SIZES),
    ],
}
PAPER_SHOWN = [
    ("paper_score", "paper {metric}"),
    ("paper_delta_points", "paper Δ (pt)"),
    ("paper_speedup", "paper speed-up"),
    ("delta_vs_paper", "our Δ − paper Δ (pt)"),
    ("paper_source", "paper source"),
]


def with_pooling(points: pd.DataFrame, artifacts: Sequence[ExitArtifact]) -> pd.DataFrame:
    """Attach how each model's exits pool (``ArtifactMetadata.exit_pooling``), so that tables name it."""
    by_key = artifacts_by_run(artifacts)
    pooling = [
        by_key[key].metadata.exit_pooling if key in by_key else ""
        for key in points[["dataset", "split", "recipe", "seed"]].itertuples(index=False, name=None)
    ]
    return points.assign(pooling=pooling)


def model_label(recipe: str, pooling: str) -> str:
    """A row's model: the recipe, with how its exits pool where they do (e.g. ``deebert (mean-pooled)``)."""
    return f"{recipe} ({POOLING_LABELS[pooling]})" if pooling else recipe


def _per_row(values: pd.Series, rows: list[tuple], index: pd.Index) -> pd.Series:
    """``values`` (indexed by the timing keys) looked up for each of ``rows``; NaN where a row was not timed."""
    return pd.Series([values.get(row) for row in rows], index=index, dtype=float)


def with_latency(points: pd.DataFrame, latency: pd.DataFrame | None) -> pd.DataFrame:
    """Attach measured speed-ups (early exit vs the same model at full depth) by batch size."""
    points = points.assign(time_saving=1 - 1 / points.speedup)
    if latency is None or latency.empty:
        return points
    keys = ["dataset", "recipe", "seed", "setting"]
    rows = list(points[keys].itertuples(index=False, name=None))
    for batch_size in sorted(latency.batch_size.unique()):
        timed = latency[latency.batch_size == batch_size].set_index(keys)
        points[f"realized_b{batch_size}"] = realized = _per_row(timed.realized_speedup, rows, points.index)
        points[f"realized_saving_b{batch_size}"] = 1 - 1 / realized
        if "realized_over_predicted" in timed:  # timings record it beside the FLOPs-predicted speed-up
            points[f"realized_over_predicted_b{batch_size}"] = _per_row(
                timed.realized_over_predicted, rows, points.index
            )
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
    if "delta" in column:  # metric points
        return f"{value:.1f}"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def partial_data_notes(artifacts: Sequence[ExitArtifact]) -> list[str]:
    """One line per dataset whose models trained on part of the published training data (a subset, or a
    partial local copy such as the mirror's 8,999-row QNLI): the papers trained on all of it, so their numbers
    beside ours compare different data."""
    fewest: dict[str, tuple[int, int]] = {}
    for meta in (artifact.metadata for artifact in artifacts):
        if is_partial(meta.train_rows, meta.published_train_rows):
            rows = min(meta.train_rows, fewest.get(meta.dataset, (meta.train_rows, 0))[0])
            fewest[meta.dataset] = (rows, meta.published_train_rows)
    return [
        f"{dataset}: trained on {rows:,} of {published:,} published training rows (a subset or a partial local "
        "copy); the papers trained on all of them, so a paper number beside ours compares different data."
        for dataset, (rows, published) in sorted(fewest.items())
    ]


def other_backbone_notes(points: pd.DataFrame) -> list[str]:
    """One line per published number of one of our (dataset, method, operating point) that comes from another
    backbone family than ours: mentioned beside the table, never set in it."""
    notes = []
    keys = points[["dataset", "recipe", "policy", "value", "backbone"]].drop_duplicates()
    sources, _ = published()
    for dataset, recipe, policy, value, backbone in keys.itertuples(index=False):
        for row in _published_rows(dataset, recipe, policy, value):
            if _family_of(row) != backbone_family(backbone):
                score = row.get("score", next((row[k] for k in ("accuracy", "f1") if k in row), None))
                notes.append(
                    f"Paper, other backbone ({_family_of(row)}, ours {backbone_family(backbone)}): "
                    f"{sources[row['source']]['paper']}, {dataset} {recipe}"
                    + (f" {policy}={row['value']}" if row.get("value") is not None else "")
                    + (f": {score}" if score is not None else "")
                    + "."
                )
    return notes


def paper_table(points: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Mean ± std over seeds of every operating point, in the layout's columns, the metric and its Δ with
    their 95% intervals (bounds averaged over seeds; a Δ whose interval contains 0 marked ``ns``), examples
    and seeds, a ``majority-class`` flag for models within noise of predicting the majority class, and the
    published numbers of the same backbone family with our-vs-paper deltas."""
    points = points if "pooling" in points.columns else points.assign(pooling="")
    keys = ["dataset", "split", "recipe", "pooling", "setting", "policy", "metric", "backbone"]
    columns = list(
        dict.fromkeys(["value", "delta_points", *(c for c, _ in SHOWN[spec.layout] if c in points.columns)])
    )
    bounds = [f"{c}{end}" for c in ("score", "delta_points") for end in (LOW, HIGH)]
    grouped = points.groupby(keys, sort=False)
    mean, std, count = grouped[columns].mean(), grouped[columns].std(), grouped.size()
    interval, examples, degenerate = (
        grouped[bounds].mean(),
        grouped.examples.first(),
        grouped.degenerate.any(),
    )
    rows = []
    for key, means in mean.iterrows():
        dataset, split, recipe, pooling, setting, policy, metric, backbone = key
        reported_as = (
            "baseline" if (recipe, setting) == (spec.reference, FULL_DEPTH) else recipe
        )  # the paper's row
        paper = (
            published_for(dataset, reported_as, policy, means.get("value", np.nan), metric, backbone) or {}
        )
        plain = setting == FULL_DEPTH and paper_policy(recipe) is None  # a model without exits
        name = model_label(recipe, pooling)
        row = {"dataset": dataset, "split": split, "model": name if plain else f"{name}: {setting}"}
        for column, heading in SHOWN[spec.layout]:
            if column not in points.columns:
                continue
            seeds = 1 if column == "value" else int(count[key])
            text = mean_pm_std(means[column], std.loc[key, column], seeds, lambda v, c=column: _format(v, c))
            if column in ("score", "delta_points"):
                low, high = interval.loc[key, f"{column}{LOW}"], interval.loc[key, f"{column}{HIGH}"]
                text = with_interval(text, low, high, lambda v, c=column: _format(v, c))
                if column == "delta_points" and low <= 0 <= high:
                    text += f" {NOT_SIGNIFICANT}"
            row[heading.format(metric=metric)] = text
        if paper:
            paper["delta_vs_paper"] = means["delta_points"] - paper["paper_delta_points"]
        for column, heading in PAPER_SHOWN:
            row[heading.format(metric=metric)] = _format(paper.get(column), column)
        row |= {
            "examples": int(examples[key]),
            "seeds": int(count[key]),
            "flags": "majority-class" if degenerate[key] else "",
        }
        rows.append(row)
    return pd.DataFrame(rows)


def source_notes() -> list[str]:
    """One line per source of published numbers, for the table's notes."""
    sources, _ = published()
    return [f"{s['paper']}: {s['where']}." for s in sources.values()]
