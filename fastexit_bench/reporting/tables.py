"""Result tables from sweeps and evaluation artefacts: per-policy summaries and per-layer metrics,
mean +- std over seeds, written as Markdown, LaTeX and CSV."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fastexit_bench.analysis.artifact import ExitArtifact
from fastexit_bench.analysis.calibration import calibration_interval
from fastexit_bench.analysis.operating_points import within_drop
from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.analysis.sweep import SweepResult, full_depth_metric
from fastexit_bench.analysis.uncertainty import bootstrap_weights, metric_interval
from fastexit_bench.errors import UnknownNameError
from fastexit_bench.io import atomic_path
from fastexit_bench.metrics import compute_metrics
from fastexit_bench.training.recipes import get_recipe

TABLE_SUFFIXES = (".md", ".tex", ".csv")
"""The formats every table is written in."""
KEYS = ["dataset", "backbone", "recipe", "policy"]


def paper_policy(recipe: str) -> str | None:
    """The exit policy of ``recipe``'s paper (None: a model that always runs to the end, or a recipe the
    registry does not know: outputs imported from another framework, whose own policy is in their
    artefact's ``exit_policy``); the one place the reports read the recipe registry."""
    try:
        return get_recipe(recipe).exit_policy
    except UnknownNameError:
        return None


UNTRAINED_EXITS = "exits before the last untrained: static only"


def trains_exits(recipe: str, artifact: dict) -> bool:
    """Whether a model's exits before the last were trained: its artefact names the policy it exits with
    (``exit_policy``), or its recipe's paper has one."""
    return bool(artifact.get("exit_policy") or paper_policy(recipe))


LOW, HIGH = "_low", "_high"  # a column's bootstrap interval: COLUMN_low, COLUMN_high
NOT_A_WIN = "—"  # a speed-up "within N points" of a model no better than the majority class


def policy_summary(results: Sequence[SweepResult]) -> pd.DataFrame:
    """Per (dataset, backbone, recipe, seed, policy), best policy first within each model: full-depth metric
    with its interval, gain vs static (points), the largest speed-up within each of the sweep's drop budgets
    (metric points below full depth), examples, and flags: ``majority-class`` (full depth within noise of
    predicting the majority class; its speed-ups are not shown) and ``never exits early``. A model whose
    exits before the last were never trained (a baseline, a truncated or distilled model) gets its static
    row only, flagged: any policy's score on untrained heads would rank noise."""
    rows = []
    for result in results:
        table, budgets = result.table, result.record.operating_points["max_drop"]
        metric = table.headline_metric.iloc[0]
        full = full_depth_metric(table, metric)
        static = table[table.policy == "static"]
        deepest = static.loc[static.value.idxmax()]
        degenerate = result.record.model_check.degenerate
        first = table.iloc[0]
        trained = trains_exits(first.recipe, result.record.artifact)
        for score in result.scores.itertuples():
            if not trained and score.policy != "static":
                continue
            group = table[table.policy == score.policy]
            flags = [
                *(["majority-class"] if degenerate else []),
                *([] if score.exits_early else ["never exits early"]),
                *([] if trained else [UNTRAINED_EXITS]),
            ]
            rows.append(
                {
                    "dataset": first.dataset,
                    "backbone": first.backbone,
                    "recipe": first.recipe,
                    "seed": first.seed,
                    "policy": score.policy,
                    "metric": metric,
                    "full_depth": full,
                    f"full_depth{LOW}": deepest[f"{metric}{LOW}"],
                    f"full_depth{HIGH}": deepest[f"{metric}{HIGH}"],
                    "gain_vs_static_pt": score.gain_vs_static,
                    **{
                        f"speedup_drop<={p:g}pt": np.nan
                        if degenerate
                        else group.speedup[within_drop(group, metric, full, p)].max()
                        for p in budgets
                    },
                    "examples": int(first.examples),
                    "flags": ", ".join(flags),
                }
            )
    return pd.DataFrame(rows)


def mean_pm_std(mean: float, std: float, count: int, fmt: Callable[[float], str]) -> str:
    """``"mean ± std"`` over seeds, or the mean alone for one seed (or an undefined std)."""
    text = fmt(mean)
    return f"{text} ± {fmt(std)}" if count > 1 and text and not np.isnan(std) else text


def with_interval(text: str, low: float, high: float, fmt: Callable[[float], str]) -> str:
    """``text`` followed by its interval, ``"0.874 [0.852, 0.896]"``."""
    return f"{text} [{fmt(low)}, {fmt(high)}]" if text and not (np.isnan(low) or np.isnan(high)) else text


def mean_std(frame: pd.DataFrame, keys: Sequence[str], missing: str = "") -> pd.DataFrame:
    """Float columns as "mean ± std" over seeds (std left out for a single seed), each followed by its
    bootstrap interval where the frame has ``COLUMN_low``/``COLUMN_high`` (bounds averaged over seeds); a value
    missing in every seed is ``missing``. Whole-number columns (example counts) keep their first value, text
    columns (flags) join the seeds' distinct entries; ``seeds`` counts rows."""
    keys = list(keys)
    bounds = [c for c in frame.columns if c.endswith((LOW, HIGH))]
    rest = [c for c in frame.columns if c not in (*keys, "seed", *bounds)]
    floats = [c for c in rest if pd.api.types.is_float_dtype(frame[c])]
    grouped = frame.groupby(keys, sort=False)
    mean, std, count = grouped[floats].mean(), grouped[floats].std(), grouped.size()
    bound = grouped[bounds].mean()
    out = mean.copy().astype(object)
    fmt = "{:.3f}".format
    for column in floats:
        texts = [
            mean_pm_std(m, s, n, fmt) if not np.isnan(m) else missing
            for m, s, n in zip(mean[column], std[column], count)
        ]
        if f"{column}{LOW}" in bounds:
            texts = [
                with_interval(t, lo, hi, fmt)
                for t, lo, hi in zip(texts, bound[f"{column}{LOW}"], bound[f"{column}{HIGH}"])
            ]
        out[column] = texts
    for column in (c for c in rest if c not in floats):
        if pd.api.types.is_integer_dtype(frame[column]):
            out[column] = grouped[column].first()
        else:
            out[column] = grouped[column].agg(
                lambda v: ", ".join(
                    dict.fromkeys(part for text in v.astype(str) for part in text.split(", ") if part)
                )
            )
    return out[rest].reset_index().assign(seeds=count.to_numpy())


def artifacts_by_run(artifacts: Sequence[ExitArtifact]) -> dict[tuple[str, str, str, int], ExitArtifact]:
    """The artefacts by (dataset, split, recipe, seed), the keys selection and paper points carry."""
    return {(a.metadata.dataset, a.metadata.split, a.metadata.recipe, a.metadata.seed): a for a in artifacts}


def layer_table(artifacts: Sequence[ExitArtifact]) -> pd.DataFrame:
    """Headline metric at every exit with its bootstrap interval, one row per (dataset, split, backbone,
    recipe, seed), with how its exits pool (``ArtifactMetadata.exit_pooling``)."""
    rows = []
    for art in artifacts:
        meta, metric, outputs = art.metadata, art.metadata.headline_metric, art.predictions
        weights = bootstrap_weights(len(outputs.labels))
        row = {
            "dataset": meta.dataset,
            "split": meta.split,
            "backbone": meta.backbone_name,
            "recipe": meta.recipe,
            "pooling": meta.exit_pooling,
            "seed": meta.seed,
            "metric": metric,
            "examples": len(outputs.labels),
        }
        for k, (predictions, measured) in enumerate(zip(outputs.predictions(), meta.layer_metrics), start=1):
            interval = metric_interval(
                metric, predictions, outputs.labels, weights
            )  # evaluate stored the metric
            row |= {
                f"layer_{k}": measured[metric],
                f"layer_{k}{LOW}": interval.low,
                f"layer_{k}{HIGH}": interval.high,
            }
        rows.append(row)
    return pd.DataFrame(rows)


def calibration_table(artifacts: Sequence[ExitArtifact]) -> pd.DataFrame:
    """Expected calibration error of every exit with its bootstrap interval, one row per classification
    artefact (dataset, split, backbone, recipe, seed); regression has no confidence to calibrate."""
    rows = []
    for art in artifacts:
        meta, outputs = art.metadata, art.predictions
        if outputs.task == "regression":
            continue
        weights = bootstrap_weights(len(outputs.labels))
        row = {
            "dataset": meta.dataset,
            "split": meta.split,
            "backbone": meta.backbone_name,
            "recipe": meta.recipe,
            "seed": meta.seed,
            "examples": len(outputs.labels),
        }
        for k, probabilities in enumerate(outputs.probabilities(), start=1):
            error, interval = calibration_interval(probabilities, outputs.labels, weights)
            row |= {f"ece_{k}": error, f"ece_{k}{LOW}": interval.low, f"ece_{k}{HIGH}": interval.high}
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["dataset", "split", "backbone", "recipe", "seed"])


def exits_table(points: pd.DataFrame, artifacts: Sequence[ExitArtifact], shown: int = 2) -> pd.DataFrame:
    """Which inputs exit where: for each early-exit model (first seed) at the operating point of its paper
    policy that exits earliest (``points``: ``paper.paper_points``), per exit layer on the reported split, the
    examples leaving there, their share, the headline metric on them with its interval, and the first
    ``shown`` texts among them (from artefacts that store texts)."""
    by_key = artifacts_by_run(artifacts)
    rows = []
    early = points[[paper_policy(r) == p for r, p in zip(points.recipe, points.policy)]]
    for (dataset, recipe), group in early.groupby(["dataset", "recipe"], sort=False):
        point = group[group.seed == group.seed.min()].sort_values("mean_exit_layer", kind="stable").iloc[0]
        art = by_key.get((dataset, point.split, recipe, point.seed))
        if art is None:
            continue
        outputs, metric = art.predictions, art.metadata.headline_metric
        exits = resolve_policy(point.policy).exit_layers(outputs, point.value)
        chosen = outputs.predictions()[exits - 1, np.arange(len(exits))]
        for k in range(1, outputs.num_layers + 1):
            members = np.flatnonzero(exits == k)
            row = {
                "dataset": dataset,
                "split": point.split,
                "model": f"{recipe}: {point.setting}",
                "seed": int(point.seed),
                "exit layer": k,
                "examples": len(members),
                "share": f"{len(members) / len(exits):.1%}",
                f"{metric} [95% CI]": "",
            }
            if len(members) > 1:
                value = compute_metrics((metric,), chosen[members], outputs.labels[members])[metric]
                interval = metric_interval(
                    metric, chosen[members], outputs.labels[members], bootstrap_weights(len(members))
                )
                row[f"{metric} [95% CI]"] = with_interval(
                    f"{value:.3f}", interval.low, interval.high, "{:.3f}".format
                )
            texts = art.texts[members[:shown]] if art.texts is not None else []
            row["examples exiting here"] = " / ".join(f"“{t.replace('|', '/')}”" for t in texts)
            rows.append(row)
    return pd.DataFrame(rows)


def write_table(frame: pd.DataFrame, stem: Path, title: str, notes: Sequence[str] = ()) -> list[Path]:
    """``stem``.md (with title and notes), .tex and .csv, each written atomically. A cell with no value (a
    metric column of another dataset's rows) prints empty, not ``nan``."""
    stem = Path(stem)
    paths = [stem.with_suffix(suffix) for suffix in TABLE_SUFFIXES]
    shown = frame.astype(object).where(frame.notna(), None)
    texts = [
        f"# {title}\n\n{shown.to_markdown(index=False, missingval='')}\n"
        + "".join(f"\n{note}\n" for note in notes),
        frame.to_latex(index=False, caption=title, na_rep=""),
        frame.to_csv(index=False),
    ]
    for path, text in zip(paths, texts):
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return paths
