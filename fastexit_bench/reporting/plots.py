"""Figures (matplotlib, PNG + PDF): metric vs FLOPs per policy, exit-layer shares, per-layer metric."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on compute nodes
import matplotlib.pyplot as plt
import pandas as pd

from fastexit_bench.analysis.operating_points import within_drop
from fastexit_bench.analysis.sweep import full_depth_metric
from fastexit_bench.io import atomic_path

FIGURE_SUFFIXES = (".png", ".pdf")


def _save(figure: plt.Figure, stem: Path) -> list[Path]:
    paths = [Path(stem).with_suffix(suffix) for suffix in FIGURE_SUFFIXES]
    for path in paths:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=path.suffix[1:], dpi=150, bbox_inches="tight")
    plt.close(figure)
    return paths


def _mean_over_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (policy, value), numeric columns averaged over seeds: policy grids are fixed, so the
    same values recur in every seed, and one line per policy stays readable."""
    numeric = table.select_dtypes("number").columns.drop(["seed", "value"], errors="ignore")
    return table.groupby(["policy", "value"], sort=False)[list(numeric)].mean().reset_index().assign(
        headline_metric=table.headline_metric.iloc[0])


def _title(dataset: str, recipe: str, table: pd.DataFrame) -> str:
    seeds = table.seed.nunique()
    return f"{dataset} / {recipe}" + (f" ({seeds} seeds)" if seeds > 1 else "")


def metric_vs_flops(sweep: pd.DataFrame, stem: Path) -> list[Path]:
    """One panel per (dataset, recipe): each policy's metric against FLOPs relative to full depth, mean
    over seeds."""
    groups = list(sweep.groupby(["dataset", "recipe"], sort=True))
    figure, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.6), squeeze=False)
    for axis, ((dataset, recipe), table) in zip(axes[0], groups):
        metric = table.headline_metric.iloc[0]
        for policy, rows in _mean_over_seeds(table).groupby("policy", sort=False):
            rows = rows.sort_values("relative_flops")
            style = {"marker": "*", "linestyle": "none", "markersize": 10} if len(rows) == 1 else {"marker": "."}
            axis.plot(rows.relative_flops, rows[metric], label=policy, **style)
        axis.set(title=_title(dataset, recipe, table), xlabel="FLOPs relative to full depth", ylabel=metric)
        axis.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="lower right")
    return _save(figure, stem)


def exit_shares(sweep: pd.DataFrame, stem: Path, max_drop_points: float = 1.0) -> list[Path]:
    """Share of examples exiting at each layer, per policy, at its fastest value within ``max_drop_points``
    (both mean over seeds)."""
    groups = list(sweep.groupby(["dataset", "recipe"], sort=True))
    figure, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.6), squeeze=False)
    for axis, ((dataset, recipe), table) in zip(axes[0], groups):
        metric = table.headline_metric.iloc[0]
        layers = sorted(int(c.rsplit("_", 1)[1]) for c in table.columns if c.startswith("exit_share_"))
        mean = _mean_over_seeds(table)
        candidates = mean[within_drop(mean, metric, full_depth_metric(mean, metric), max_drop_points)]
        for policy, rows in candidates.groupby("policy", sort=False):
            best = rows.loc[rows.speedup.idxmax()]
            axis.plot(layers, [best[f"exit_share_{k}"] for k in layers], marker="o",
                      label=f"{policy}={best.value:g} ({best.speedup:.2f}x)")
        axis.set(title=f"{_title(dataset, recipe, table)}: within {max_drop_points:g} pt", xlabel="exit layer",
                 ylabel="share of examples")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    return _save(figure, stem)


def layer_metric(layers: pd.DataFrame, stem: Path) -> list[Path]:
    """Headline metric of every exit, one line per recipe, one panel per dataset (mean over seeds), on
    each dataset's first evaluation split (dev)."""
    layers = layers[layers.split == layers.groupby("dataset").split.transform("first")]
    datasets = sorted(layers.dataset.unique())
    figure, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.6), squeeze=False)
    for axis, dataset in zip(axes[0], datasets):
        table = layers[layers.dataset == dataset]
        columns = [c for c in table.columns if c.startswith("layer_") and table[c].notna().any()]
        for recipe, rows in table.groupby("recipe", sort=False):
            values = rows[columns].mean()
            axis.plot(range(1, len(columns) + 1), values, marker="o", label=recipe)
        axis.set(title=f"{dataset} ({table.split.iloc[0]})", xlabel="exit layer", ylabel=table.metric.iloc[0])
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return _save(figure, stem)
