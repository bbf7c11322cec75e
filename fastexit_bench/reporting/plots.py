"""Figures (matplotlib, PNG + PDF): metric vs FLOPs per policy, exit-layer shares, per-layer metric.
What to read in each is in ``reporting/captions/<name>.rst``, shown under it on the results page and by
``snakemake --report``.

A figure of `report` is a function registered with ``@report_plot(reads=...)``: `report` draws it and the
workflow lists its files, so adding one takes this module and its caption file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")  # files only; no display on compute nodes
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from fastexit_bench.analysis.artifact import ExitArtifact
from fastexit_bench.analysis.calibration import equal_mass_reliability
from fastexit_bench.analysis.operating_points import within_drop
from fastexit_bench.analysis.sweep import full_depth_metric
from fastexit_bench.io import atomic_path
from fastexit_bench.metrics import direction
from fastexit_bench.registry import Registry
from fastexit_bench.reporting.tables import HIGH, LOW, paper_policy
from fastexit_bench.serving.record import ServingRecord

FIGURE_SUFFIXES = (".png", ".pdf")


@dataclass(frozen=True)
class ReportData:
    """What a report figure may read: every sweep row of the experiment, the metric of every exit
    (`tables.layer_table`), and the evaluation artefacts."""

    sweep: pd.DataFrame
    layers: pd.DataFrame
    artifacts: Sequence[ExitArtifact]


@dataclass(frozen=True)
class ReportPlot:
    """A registered figure: ``draw(<the ReportData field it reads>, stem)`` writes stem.{png,pdf}."""

    name: str
    draw: Callable[[Any, Path], list[Path]]
    reads: Literal["sweep", "layers", "artifacts"]

    def __call__(self, data: ReportData, stem: Path) -> list[Path]:
        return self.draw(getattr(data, self.reads), stem)


REPORT_PLOTS: Registry[ReportPlot] = Registry("report plot")
"""Every figure `report` writes, as PLOTS/<name>.{png,pdf}, captioned by reporting/captions/<name>.rst."""


def report_plot(reads: Literal["sweep", "layers", "artifacts"]) -> Callable[[Callable], Callable]:
    """Register the decorated function as a figure of `report`, named after the function."""

    def register(draw: Callable[[Any, Path], list[Path]]) -> Callable[[Any, Path], list[Path]]:
        REPORT_PLOTS.add(ReportPlot(draw.__name__, draw, reads))
        return draw

    return register


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
    return (
        table.groupby(["policy", "value"], sort=False)[list(numeric)]
        .mean()
        .reset_index()
        .assign(headline_metric=table.headline_metric.iloc[0])
    )


def _running_best(values: pd.Series, metric: str) -> pd.Series:
    """The best value so far along ``values`` (by FLOPs): a Pareto front, whichever way ``metric`` is better."""
    return values.cummax() if direction(metric) > 0 else values.cummin()


def _title(dataset: str, recipe: str, table: pd.DataFrame) -> str:
    seeds = table.seed.nunique()
    return f"{dataset} / {recipe} ({table.split.iloc[0]}" + (f", {seeds} seeds)" if seeds > 1 else ")")


def _early_exit_panels(sweep: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """(dataset, recipe) panels of models trained to exit early; a model without an exit policy (baseline,
    truncated, distilled) has early heads nobody trained, and its policy curves would only show noise."""
    return [
        (key, table)
        for key, table in sweep.groupby(["dataset", "recipe"], sort=True)
        if paper_policy(key[1]) is not None
    ]


def _panels(count: int) -> tuple[plt.Figure, list[plt.Axes]]:
    figure, axes = plt.subplots(1, max(count, 1), figsize=(4.5 * max(count, 1), 3.6), squeeze=False)
    if count == 0:
        axes[0][0].text(0.5, 0.5, "no early-exit model in this experiment", ha="center", va="center")
        axes[0][0].set_axis_off()
    return figure, list(axes[0])


def _same_y_per_dataset(axes: list[plt.Axes], datasets: list[str]) -> None:
    """One y-range for every panel of a dataset, so a flat curve never looks steep beside another."""
    for dataset in set(datasets):
        shown = [axis for axis, d in zip(axes, datasets) if d == dataset]
        low = min(axis.get_ylim()[0] for axis in shown)
        high = max(axis.get_ylim()[1] for axis in shown)
        for axis in shown:
            axis.set_ylim(low, high)


@report_plot(reads="sweep")
def metric_vs_flops(sweep: pd.DataFrame, stem: Path) -> list[Path]:
    """One panel per early-exit model (dataset, recipe): every swept value of each policy as a marker (mean
    over seeds) and the policy's Pareto front, the best metric within each FLOPs budget, as a step line, so
    nothing is drawn between values that were not measured; one y-range per dataset."""
    panels = _early_exit_panels(sweep)
    figure, axes = _panels(len(panels))
    for axis, ((dataset, recipe), table) in zip(axes, panels):
        metric = table.headline_metric.iloc[0]
        for policy, rows in _mean_over_seeds(table).groupby("policy", sort=False):
            rows = rows.sort_values("relative_flops")
            points = axis.plot(
                rows.relative_flops,
                rows[metric],
                marker="*" if len(rows) == 1 else ".",
                markersize=10 if len(rows) == 1 else 6,
                linestyle="none",
                label=policy,
            )
            if len(rows) > 1:
                front = _running_best(rows[metric], metric)
                axis.plot(
                    rows.relative_flops,
                    front,
                    drawstyle="steps-post",
                    color=points[0].get_color(),
                    alpha=0.6,
                    linewidth=1,
                )
        axis.set(title=_title(dataset, recipe, table), xlabel="FLOPs relative to full depth", ylabel=metric)
        axis.grid(alpha=0.3)
    _same_y_per_dataset(axes[: len(panels)], [dataset for (dataset, _), _ in panels])
    if panels:
        _legend_outside(axes[len(panels) - 1], fontsize=8)
    return _save(figure, stem)


def _legend_outside(axis, fontsize: float) -> None:
    """The legend under the axes (panels stand side by side), so that it never covers data; the saved figure
    grows to hold it."""
    axis.legend(fontsize=fontsize, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)


@report_plot(reads="sweep")
def exit_shares(sweep: pd.DataFrame, stem: Path, max_drop_points: float = 1.0) -> list[Path]:
    """Share of examples exiting at each layer, as bars grouped by layer, per policy at its fastest value
    within ``max_drop_points`` (both mean over seeds), for early-exit models."""
    panels = _early_exit_panels(sweep)
    figure, axes = _panels(len(panels))
    for axis, ((dataset, recipe), table) in zip(axes, panels):
        metric = table.headline_metric.iloc[0]
        layers = np.array(
            sorted(int(c.rsplit("_", 1)[1]) for c in table.columns if c.startswith("exit_share_"))
        )
        mean = _mean_over_seeds(table)
        candidates = mean[within_drop(mean, metric, full_depth_metric(mean, metric), max_drop_points)]
        groups = list(candidates.groupby("policy", sort=False))
        width = 0.8 / max(len(groups), 1)
        for i, (policy, rows) in enumerate(groups):
            best = rows.loc[rows.speedup.idxmax()]
            axis.bar(
                layers - 0.4 + width * (i + 0.5),
                [best[f"exit_share_{k}"] for k in layers],
                width,
                label=f"{policy} ({best.speedup:.2f}x)"
                if policy == "oracle"
                else (f"{policy}={best.value:.3g} ({best.speedup:.2f}x)"),
            )
        axis.set(
            title=f"{_title(dataset, recipe, table)}: within {max_drop_points:g} pt",
            xlabel="exit layer",
            ylabel="share of examples",
            xticks=layers,
            ylim=(0, 1),
        )
        axis.grid(alpha=0.3, axis="y")
        _legend_outside(axis, fontsize=7)
    return _save(figure, stem)


@report_plot(reads="layers")
def layer_metric(layers: pd.DataFrame, stem: Path) -> list[Path]:
    """Headline metric of every exit with its 95% bootstrap interval (bounds averaged over seeds), one series
    per recipe, one panel per dataset (mean over seeds), on each dataset's first evaluation split (dev)."""
    layers = layers[layers.split == layers.groupby("dataset").split.transform("first")]
    datasets = sorted(layers.dataset.unique())
    figure, axes = _panels(len(datasets))
    for axis, dataset in zip(axes, datasets):
        table = layers[layers.dataset == dataset]
        columns = [
            c
            for c in table.columns
            if c.startswith("layer_") and not c.endswith((LOW, HIGH)) and table[c].notna().any()
        ]
        for recipe, rows in table.groupby("recipe", sort=False):
            values, low, high = (
                rows[[f"{c}{end}" for c in columns]].mean().to_numpy() for end in ("", LOW, HIGH)
            )
            axis.errorbar(
                range(1, len(columns) + 1),
                values,
                yerr=[values - low, high - values],
                marker="o",
                capsize=2,
                label=recipe,
            )
        axis.set(title=f"{dataset} ({table.split.iloc[0]})", xlabel="exit layer", ylabel=table.metric.iloc[0])
        axis.grid(alpha=0.3)
        _legend_outside(axis, fontsize=8)
    return _save(figure, stem)


@report_plot(reads="artifacts")
def calibration(artifacts: Sequence[ExitArtifact], stem: Path) -> list[Path]:
    """Reliability curves (accuracy against confidence per bin) of every exit, one panel per early-exit
    model on its dev split (first seed), one line per exit; the diagonal is perfect calibration."""
    models = {}
    for art in artifacts:
        meta = art.metadata
        if art.predictions.task == "classification" and paper_policy(meta.recipe) is not None:
            models.setdefault((meta.dataset, meta.recipe), art)  # the first split and seed listed
    figure, axes = _panels(len(models))
    for axis, ((dataset, recipe), art) in zip(axes, sorted(models.items())):
        outputs = art.predictions
        colours = plt.cm.viridis(np.linspace(0, 0.9, outputs.num_layers))
        for k, (probabilities, colour) in enumerate(zip(outputs.probabilities(), colours), start=1):
            confidence, accuracy = equal_mass_reliability(probabilities, outputs.labels)
            axis.plot(confidence, accuracy, marker=".", color=colour, label=f"exit {k}")
        axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        axis.set(
            title=f"{dataset} / {recipe} ({art.metadata.split}, seed {art.metadata.seed})",
            xlabel=f"confidence (top probability)\n{len(confidence)} bins of equally many examples",
            ylabel="accuracy",
            xlim=(0, 1),
            ylim=(0, 1),
        )
        axis.grid(alpha=0.3)
        _legend_outside(axis, fontsize=6)
    return _save(figure, stem)


def serving_latency(record: ServingRecord, stem: Path) -> list[Path]:
    """p99 latency against offered load (the Server search's rates) per scheduler, with the p99 bound: the
    rate where a line crosses the bound is what the scheduler sustains."""
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, results in record.results.items():
        tried = sorted(results.get("server", {}).get("tried", []), key=lambda point: point["rate_per_s"])
        if tried:
            axis.plot([p["rate_per_s"] for p in tried], [p["p99_ms"] for p in tried], marker="o", label=name)
    axis.axhline(record.settings.bound_ms, color="grey", linestyle="--", label="p99 bound")
    axis.set(
        xlabel="offered load (queries/s, Poisson)",
        ylabel="p99 latency (ms)",
        yscale="log",
        title=f"{record.model.recipe} on {record.model.dataset}, {record.policy} = {record.value:g} "
        f"({record.environment.device})",
    )
    axis.legend()
    return _save(figure, stem)


def _pareto(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The rows no other row beats at equal or fewer FLOPs, by FLOPs."""
    rows = rows.sort_values("flops_per_example")
    return rows[rows[metric] == _running_best(rows[metric], metric)].drop_duplicates(metric)


@report_plot(reads="sweep")
def method_fronts(sweep: pd.DataFrame, stem: Path) -> list[Path]:
    """Every method on one dataset's axes, one panel per dataset (dev split, mean over seeds): each early-exit
    model's Pareto front at its paper's policy, fixed-depth models (baseline, truncated-k, distilled-k) as points
    joined into their own fronts (each ending at the baseline, their full depth), and the papers' published (speed-up, metric change) placed relative to our
    baseline where a published number exists (a claim of another backbone, placed on ours: not a measurement)."""
    from fastexit_bench.reporting.paper import published, published_effect

    _, published_rows = published()
    datasets = sorted(sweep.dataset.unique())
    figure, axes = _panels(len(datasets))
    for axis, dataset in zip(axes, datasets):
        table = sweep[sweep.dataset == dataset]
        metric = table.headline_metric.iloc[0]
        fixed: dict[str, list[tuple[float, float]]] = {}
        baseline = None
        for recipe, rows in table.groupby("recipe", sort=True):
            mean = _mean_over_seeds(rows)
            policy = paper_policy(recipe)
            if policy is None:
                full = mean[mean.policy == "static"].sort_values("value").iloc[-1]
                family = recipe.split("-")[0]
                fixed.setdefault(family, []).append((full.flops_per_example / 1e9, full[metric]))
                baseline = full if recipe == "baseline" else baseline
                continue
            front = _pareto(mean[mean.policy == policy], metric)
            axis.plot(
                front.flops_per_example / 1e9,
                front[metric],
                marker=".",
                drawstyle="steps-post",
                label=f"{recipe} ({policy})",
            )
        for family, points in sorted(fixed.items()):
            if family != "baseline":  # k = full depth is the baseline: each family's front ends there
                points = points + fixed.get("baseline", [])
            x, y = zip(*sorted(points))
            axis.plot(
                x,
                y,
                marker="s" if family == "baseline" else "o",
                linestyle="--" if len(x) > 1 else "none",
                label=family if family == "baseline" else f"{family}-k",
            )
        for row in (r for r in published_rows if r["dataset"] == dataset and "policy" in r):
            if baseline is None:
                break
            _, change, speedup = published_effect(row)
            axis.plot(
                baseline.flops_per_example / 1e9 / speedup,
                baseline[metric] + change / 100,
                marker="X",
                markersize=9,
                linestyle="none",
                color="black",
                label=f"paper {row['recipe']} {row['policy']}={row.get('value', '')} (relative to our baseline)",
            )
        axis.set(
            title=f"{dataset} ({table.split.iloc[0]})", xlabel="GFLOPs per example (fvcore)", ylabel=metric
        )
        axis.grid(alpha=0.3)
        _legend_outside(axis, fontsize=7)
    return _save(figure, stem)


def leaderboard_plot(ranking: pd.DataFrame, per_model: pd.DataFrame, stem: Path) -> list[Path]:
    """Per policy, best first from the top: the pooled gain over static with its 95 % interval, and each
    model's own gain as a small grey dot (the leaderboard's figure)."""
    order = list(ranking.policy)
    figure, axis = plt.subplots(figsize=(6.5, 0.45 * len(order) + 1.2))
    if not order:
        axis.text(0.5, 0.5, "no model could be ranked (see the table's notes)", ha="center", va="center")
        axis.set_axis_off()
        return _save(figure, stem)
    y = np.arange(len(order))[::-1]
    for position, policy in zip(y, order):
        own = per_model[per_model.policy == policy].gain_vs_static
        axis.scatter(own, np.full(len(own), position), s=9, color="0.7", zorder=1)
    axis.errorbar(
        ranking.gain_vs_static,
        y,
        xerr=[ranking.gain_vs_static - ranking.gain_low, ranking.gain_high - ranking.gain_vs_static],
        fmt="o",
        color="C0",
        capsize=3,
        zorder=2,
    )
    axis.axvline(0, color="black", linewidth=0.8)
    axis.set_yticks(y, order)
    axis.set_xlabel("gain over static truncation at equal FLOPs (points, reported split)")
    axis.set_title("Exit policies, pooled over models (dots: one model each)")
    return _save(figure, stem)
