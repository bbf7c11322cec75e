"""Threshold sweeps over a saved evaluation artefact, and one-number scores per policy.

Everything here reads only :class:`~fastexit_bench.analysis.artifact.ExitArtifact` files: a sweep of any
number of policies and values costs no forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fastexit_bench.analysis.artifact import ArtifactMetadata, ExitArtifact, ModelIdentity
from fastexit_bench.analysis.degenerate import ModelCheck
from fastexit_bench.analysis.flops import ComponentFlops, flops_for
from fastexit_bench.analysis.policies import ExitPolicy, policy_errors
from fastexit_bench.analysis.uncertainty import bootstrap_weights, metric_interval
from fastexit_bench.errors import FastExitError, OutputError, RecordError
from fastexit_bench.io import check_file_set, file_set, read_json
from fastexit_bench.metrics import compute_metrics, direction
from fastexit_bench.provenance import Provenance
from fastexit_bench.records import VersionedRecord

CURVE_POINTS = 1001


def sweep(
    artifact: ExitArtifact,
    policies: Sequence[ExitPolicy],
    grids: dict[str, Sequence[float]] | None = None,
    flops: ComponentFlops | None = None,
) -> pd.DataFrame:
    """One row per (policy, value): metrics at the exit layer with the headline metric's bootstrap interval
    (``<metric>_low``/``_high``/``_se``, the same resamples for every row), the number of examples, mean exit layer,
    exit-layer shares, expected MACs and FLOPs per example at the true token lengths and padded to the max
    length, FLOPs relative to the full-depth model, and speed-up (both at true lengths)."""
    meta, outputs = artifact.metadata, artifact.predictions
    if outputs.labels is None:
        raise FastExitError("the artefact has no labels, so a sweep has no metric to report")
    flops = flops or flops_for(meta)
    full = flops.full_depth(outputs.num_layers, artifact.lengths).mean()
    padded = np.full(len(artifact.lengths), meta.max_length or int(artifact.lengths.max()))
    predictions = outputs.predictions()
    columns = np.arange(predictions.shape[1])
    headline, weights = meta.headline_metric, bootstrap_weights(len(columns))
    rows = []
    for policy in policies:
        with policy_errors(policy):
            values = list((grids or {}).get(policy.name) or policy.checked_grid(outputs))
            layers = policy.sweep_exit_layers(outputs, values)
        for value, exits in zip(values, layers):
            cost = flops.per_example(exits, artifact.lengths, policy.reads).mean()
            cost_padded = flops.per_example(exits, padded, policy.reads).mean()
            shares = np.bincount(exits, minlength=outputs.num_layers + 1)[1:] / len(exits)
            chosen = predictions[exits - 1, columns]
            interval = metric_interval(headline, chosen, outputs.labels, weights)
            rows.append(
                {
                    "dataset": meta.dataset,
                    "split": meta.split,
                    "recipe": meta.recipe,
                    "backbone": meta.backbone_name,
                    "seed": meta.seed,
                    "policy": policy.name,
                    "parameter": policy.parameter,
                    "value": float(value),
                    "headline_metric": headline,
                    **compute_metrics(tuple(meta.metrics), chosen, outputs.labels),
                    f"{headline}_low": interval.low,
                    f"{headline}_high": interval.high,
                    f"{headline}_se": interval.se,
                    "examples": len(columns),
                    "mean_exit_layer": float(exits.mean()),
                    **{f"exit_share_{k}": float(share) for k, share in enumerate(shares, start=1)},
                    "macs_per_example": float(cost),
                    "flops_per_example": 2 * float(cost),
                    "flops_per_example_padded": 2 * float(cost_padded),
                    "relative_flops": float(cost / full),
                    "speedup": float(full / cost),
                    "flops_source": flops.source,
                }
            )
    return pd.DataFrame(rows)


def full_depth_metric(table: pd.DataFrame, metric: str) -> float:
    """The metric of the plain model: ``static`` at its last layer."""
    static = table[table.policy == "static"]
    if static.empty:
        raise FastExitError(
            "selection and scores are relative to the 'static' policy; include it in the sweep"
        )
    return float(static.loc[static.value.idxmax(), metric])


def _budget_curve(x: np.ndarray, y: np.ndarray, budgets: np.ndarray, floor: float) -> np.ndarray:
    """Best metric reachable within each relative-FLOPs budget (``floor`` where nothing fits)."""
    order = np.argsort(x, kind="stable")
    xs, best = x[order], np.maximum.accumulate(y[order])
    index = np.searchsorted(xs, budgets, side="right") - 1
    return np.where(index >= 0, best[np.clip(index, 0, None)], floor)


def _exits_early(rows: pd.DataFrame, depth: float) -> bool:
    """Whether some value sends an example out before the last layer; for thresholds, leaving out the grid's
    two ends (at the loosest one a head at uniform confidence passes too, at the strictest nothing does)."""
    if rows.parameter.iloc[0] == "threshold" and len(rows) > 2:
        rows = rows[(rows.value > rows.value.min()) & (rows.value < rows.value.max())]
    return bool(rows.mean_exit_layer.min() < depth - 1e-9)


def scores(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per policy, best first: ``gain_vs_static``, ``exits_early`` and ``best_speedup_at_full_metric``.

    ``gain_vs_static`` (ELUE's idea) is the mean gain, in metric points, of the policy's best metric within
    a relative-FLOPs budget over static truncation's, over budgets from static's layer 1 to full depth::

        gain = 100 * mean_b [ best_policy(b) - best_static(b) ],  b in linspace(r_1, 1, CURVE_POINTS)

    where ``best(b)`` is the best metric among the curve's points costing at most ``b`` (lower-is-better
    metrics negated), or static's layer-1 metric where none does (truncating at layer 1 always fits). It is
    0 for static and for any policy no better than truncating, positive when exits buy accuracy at equal
    FLOPs, bounded by the metric's range (+-100 points for accuracy) and finite for every input: metrics are
    always defined (``metrics``), and a one-layer model has the single budget 1. ``exits_early`` says whether
    any swept value sends an example out before the last layer (false for a policy whose heads never reach
    its thresholds: :func:`_exits_early`). ``best_speedup_at_full_metric`` is the largest speed-up that keeps the full-depth
    metric."""
    sign = direction(metric)
    full = full_depth_metric(table, metric)
    static = table[table.policy == "static"]
    budgets = np.linspace(static.relative_flops.min(), 1.0, CURVE_POINTS)
    floor = sign * float(static.loc[static.value.idxmin(), metric])
    depth = float(static.value.max())

    def curve(rows: pd.DataFrame) -> np.ndarray:
        return _budget_curve(rows.relative_flops.to_numpy(), sign * rows[metric].to_numpy(), budgets, floor)

    reference = curve(static)
    return pd.DataFrame(
        [
            {
                "policy": policy,
                "metric": metric,
                "gain_vs_static": float(100 * np.mean(curve(rows) - reference)),
                "exits_early": _exits_early(rows, depth),
                "best_speedup_at_full_metric": rows.loc[
                    sign * rows[metric] >= sign * full - 1e-12, "speedup"
                ].max(),
            }
            for policy, rows in table.groupby("policy", sort=False)
        ]
    ).sort_values("gain_vs_static", ascending=False, kind="stable", ignore_index=True)


SWEEP_FORMAT_VERSION = 2  # 2: gain_vs_static replaces auc_vs_static; intervals, model check


@dataclass(frozen=True)
class SweepFiles:
    """The files one sweep writes, all named after its ``--out`` CSV: the rows, the scores, the selected
    operating points and the JSON record. The workflow declares each one; ``report`` reads all four."""

    table: Path

    def __post_init__(self) -> None:
        if Path(self.table).suffix != ".csv":
            raise OutputError(
                f"{self.table}: a sweep's output is a .csv (its scores, selection and record are "
                "named after it: OUT.scores.csv, OUT.selection.csv, OUT.json)"
            )

    @property
    def scores(self) -> Path:
        return self.table.with_suffix(".scores.csv")

    @property
    def selection(self) -> Path:
        return self.table.with_suffix(".selection.csv")

    @property
    def record(self) -> Path:
        return self.table.with_suffix(".json")

    def all(self) -> list[Path]:
        return [self.table, self.scores, self.selection, self.record]

    @classmethod
    def of_selection(cls, selection: Path) -> SweepFiles:
        """The sweep whose ``OUT.selection.csv`` is ``selection``."""
        name = Path(selection).name
        if not name.endswith(".selection.csv"):
            raise RecordError(f"{selection} is not a sweep's OUT.selection.csv; pass the one `sweep` wrote")
        return cls(Path(selection).with_name(name.removesuffix(".selection.csv") + ".csv"))

    def model(self) -> ModelIdentity:
        """The identity of the model this sweep read (from its record, once its files are checked)."""
        record = read_sweep_record(self)
        return ModelIdentity.of(ArtifactMetadata.from_dict(record.artifact, str(self.record)))


@dataclass
class SweepRecord(VersionedRecord):
    """``<sweep>.json``: what a sweep read and how it chose its operating points.

    Attributes:
        artifact: the dev artefact's metadata (provenance left out).
        operating_points: the ``OperatingPointSpec`` used, as a dict (``values``, ``max_drop``, ``min_speedup``).
        reported_split: the split the selection's ``test_*`` columns were measured on.
        flops_source: ``fvcore`` or ``analytic``; rows: rows in the table.
        model_check: the dev artefact's ``degenerate.ModelCheck`` (full depth against the majority class).
        provenance: the ``provenance.collect`` block of the sweep run, with input hashes.
    """

    artifact: dict[str, Any]
    operating_points: dict[str, Any]
    reported_split: str
    flops_source: str
    rows: int
    model_check: ModelCheck
    provenance: Provenance = field(default_factory=Provenance)

    VERSION: ClassVar[int] = SWEEP_FORMAT_VERSION
    RERUN: ClassVar[str] = "fastexit-bench sweep"


@dataclass
class SweepResult:
    """One sweep's outputs in memory: every (policy, value) row on dev, the per-policy scores, and the
    operating points chosen on dev and measured on the reported split."""

    table: pd.DataFrame
    scores: pd.DataFrame
    selection: pd.DataFrame
    record: SweepRecord

    def save(self, files: SweepFiles) -> None:
        """Publish the three CSVs and the record as one result (``io.FileSet``)."""
        with file_set(files.record) as outputs:
            for frame, path in (
                (self.table, files.table),
                (self.scores, files.scores),
                (self.selection, files.selection),
            ):
                frame.to_csv(outputs.path(path), index=False)
            outputs.publish(self.record.to_dict())

    @classmethod
    def load(cls, files: SweepFiles) -> SweepResult:
        missing = [str(p) for p in files.all() if not p.is_file()]
        if missing:
            raise RecordError(
                f"sweep {files.table} is incomplete (missing {missing}); rerun `fastexit-bench sweep`"
            )
        return cls(
            read_sweep_csv(files.table, TABLE_COLUMNS),
            read_sweep_csv(files.scores, SCORE_COLUMNS),
            read_sweep_csv(files.selection, SELECTION_COLUMNS),
            read_sweep_record(files),
        )


# the columns a reader of each sweep CSV relies on
TABLE_COLUMNS = (
    "dataset",
    "split",
    "recipe",
    "backbone",
    "seed",
    "policy",
    "value",
    "headline_metric",
    "speedup",
)
SCORE_COLUMNS = ("policy", "metric")
SELECTION_COLUMNS = ("policy", "setting", "value", "dataset", "recipe", "seed", "metric", "test_split")


def read_sweep_record(files: SweepFiles) -> SweepRecord:
    """The sweep's record, once its files are checked to be the ones it lists (one sweep's, whole)."""
    payload = read_json(files.record)
    check_file_set(files.record, payload, SweepRecord.RERUN)
    return SweepRecord.from_dict(payload, str(files.record))


def read_sweep_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """One of a sweep's CSVs; a missing, corrupt or foreign file is a :class:`RecordError` naming it."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as error:  # pandas' parser errors are ValueErrors
        raise RecordError(
            f"{path} cannot be read as a sweep CSV ({str(error).splitlines()[0]}); rerun "
            "`fastexit-bench sweep`"
        ) from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RecordError(
            f"{path} is not a sweep CSV this version reads (no columns {missing}); rerun "
            "`fastexit-bench sweep`"
        )
    return frame
