"""Result tables from sweeps and evaluation artefacts: per-policy summaries and per-layer metrics,
mean +- std over seeds, written as Markdown, LaTeX and CSV."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fastexit_bench.analysis.artifact import ExitArtifact
from fastexit_bench.analysis.operating_points import within_drop
from fastexit_bench.analysis.sweep import SweepResult, full_depth_metric
from fastexit_bench.io import atomic_path

KEYS = ["dataset", "backbone", "recipe", "policy"]


def policy_summary(results: Sequence[SweepResult]) -> pd.DataFrame:
    """Per (dataset, backbone, recipe, seed, policy): full-depth metric, the sweep's AUC vs static, and the
    largest speed-up within each of the sweep's drop budgets (metric points below full depth)."""
    rows = []
    for result in results:
        table, budgets = result.table, result.record.operating_points["max_drop"]
        metric = table.headline_metric.iloc[0]
        full = full_depth_metric(table, metric)
        ranking = result.scores.set_index("policy")
        first = table.iloc[0]
        for policy, group in table.groupby("policy", sort=False):
            rows.append({"dataset": first.dataset, "backbone": first.backbone, "recipe": first.recipe,
                         "seed": first.seed, "policy": policy, "metric": metric, "full_depth": full,
                         "auc_vs_static": ranking.loc[policy, "auc_vs_static"],
                         **{f"speedup_drop<={p:g}pt": group.speedup[within_drop(group, metric, full, p)].max()
                            for p in budgets}})
    return pd.DataFrame(rows)


def mean_pm_std(mean: float, std: float, count: int, fmt: Callable[[float], str]) -> str:
    """``"mean ± std"`` over seeds, or the mean alone for one seed (or an undefined std)."""
    text = fmt(mean)
    return f"{text} ± {fmt(std)}" if count > 1 and text and not np.isnan(std) else text


def mean_std(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Numeric columns as "mean ± std" over seeds (std left out for a single seed)."""
    numeric = [c for c in frame.columns if c not in (*keys, "seed") and pd.api.types.is_numeric_dtype(frame[c])]
    grouped = frame.groupby(list(keys), sort=False)
    mean, std, count = grouped[numeric].mean(), grouped[numeric].std(), grouped.size()
    out = mean.copy().astype(object)
    for column in numeric:
        out[column] = [mean_pm_std(m, s, n, "{:.3f}".format) for m, s, n in zip(mean[column], std[column], count)]
    return out.reset_index().assign(seeds=count.to_numpy())


def layer_table(artifacts: Sequence[ExitArtifact]) -> pd.DataFrame:
    """Headline metric at every exit, one row per (dataset, split, backbone, recipe, seed)."""
    rows = []
    for art in artifacts:
        meta, metric = art.metadata, art.metadata.headline_metric
        rows.append({"dataset": meta.dataset, "split": meta.split, "backbone": meta.backbone_name,
                     "recipe": meta.recipe, "seed": meta.seed, "metric": metric,
                     **{f"layer_{k}": m[metric] for k, m in enumerate(meta.layer_metrics, start=1)}})
    return pd.DataFrame(rows)


TABLE_SUFFIXES = (".md", ".tex", ".csv")


def write_table(frame: pd.DataFrame, stem: Path, title: str, notes: Sequence[str] = ()) -> list[Path]:
    """``stem``.md (with title and notes), .tex and .csv, each written atomically."""
    stem = Path(stem)
    paths = [stem.with_suffix(suffix) for suffix in TABLE_SUFFIXES]
    texts = [
        f"# {title}\n\n{frame.to_markdown(index=False)}\n" + "".join(f"\n{note}\n" for note in notes),
        frame.to_latex(index=False, caption=title),
        frame.to_csv(index=False),
    ]
    for path, text in zip(paths, texts):
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return paths
