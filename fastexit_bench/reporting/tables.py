"""Result tables from sweeps and evaluation artefacts: per-policy summaries and per-layer metrics,
mean +- std over seeds, written as Markdown, LaTeX and CSV."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fastexit_bench.analysis.artifact import ExitArtifact
from fastexit_bench.io import atomic_path
from fastexit_bench.analysis.sweep import full_depth_metric, scores, within_drop

KEYS = ["dataset", "backbone", "recipe", "policy"]


def policy_summary(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, backbone, recipe, seed, policy): full-depth metric, AUC vs static, speed-up within
    0 / 1 / 2 metric points of full depth."""
    rows = []
    for (dataset, backbone, recipe, seed), table in sweep.groupby(["dataset", "backbone", "recipe", "seed"]):
        metric = table.headline_metric.iloc[0]
        full = full_depth_metric(table, metric)
        ranking = scores(table, metric).set_index("policy")
        for policy, group in table.groupby("policy", sort=False):
            rows.append({"dataset": dataset, "backbone": backbone, "recipe": recipe, "seed": seed,
                         "policy": policy, "metric": metric, "full_depth": full,
                         "auc_vs_static": ranking.loc[policy, "auc_vs_static"],
                         **{f"speedup_drop<={p}pt": group.speedup[within_drop(group, metric, full, p)].max()
                            for p in (0, 1, 2)}})
    return pd.DataFrame(rows)


def mean_std(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Numeric columns as "mean +- std" over seeds (std left out for a single seed)."""
    numeric = [c for c in frame.columns if c not in (*keys, "seed") and pd.api.types.is_numeric_dtype(frame[c])]
    grouped = frame.groupby(list(keys), sort=False)
    mean, std, count = grouped[numeric].mean(), grouped[numeric].std(), grouped.size()
    out = mean.map(lambda v: f"{v:.3f}")
    for column in numeric:
        with_std = count > 1
        out.loc[with_std, column] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(mean.loc[with_std, column],
                                                                         std.loc[with_std, column])]
    return out.reset_index().assign(seeds=count.to_numpy())


def layer_table(artifacts: Sequence[ExitArtifact]) -> pd.DataFrame:
    """Headline metric at every exit, one row per (dataset, split, backbone, recipe, seed)."""
    rows = []
    for art in artifacts:
        meta, metric = art.metadata, art.metadata["metrics"][0]
        rows.append({"dataset": meta["dataset"], "split": meta["split"], "backbone": meta["backbone"]["requested"],
                     "recipe": meta["recipe"], "seed": meta["seed"], "metric": metric,
                     **{f"layer_{k}": m[metric] for k, m in enumerate(meta["layer_metrics"], start=1)}})
    return pd.DataFrame(rows)


def write_table(frame: pd.DataFrame, stem: Path, title: str, notes: Sequence[str] = ()) -> list[Path]:
    """``stem``.md (with title and notes), .tex and .csv, each written atomically."""
    stem = Path(stem)
    paths = [stem.with_suffix(".md"), stem.with_suffix(".tex"), stem.with_suffix(".csv")]
    texts = [
        f"# {title}\n\n{frame.to_markdown(index=False)}\n" + "".join(f"\n{note}\n" for note in notes),
        frame.to_latex(index=False, caption=title),
        frame.to_csv(index=False),
    ]
    for path, text in zip(paths, texts):
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return paths
