"""Claims as data: the targets and published claims the results are checked against (``claims.yaml``), each
evaluated on the operating points the reports wrote (``<experiment>_points.csv``), never typed by hand.

A claim names an experiment's model at its exit policy and the point dev chooses within ``max_loss`` metric
points of full depth; its goals are read on the reported split (mean over seeds, with the mean 95% interval
bounds). Published claims are the papers' relative numbers (speed-up and metric change at their operating point,
``published.yaml``): the goal is the paper's, the measurement ours, on our backbone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import yaml

from fastexit_bench import provenance
from fastexit_bench.errors import FastExitError
from fastexit_bench.io import check_file_set, read_json, sha256_file
from fastexit_bench.provenance import Provenance
from fastexit_bench.records import VersionedRecord
from fastexit_bench.runtime.config import LATENCY_BATCH_SIZES

CLAIMS = Path(__file__).with_name("claims.yaml")
MET, MISSED, NOT_RUN = "met", "missed", "not run"
PROVISIONAL = "met, fewer than 3 seeds"
"""Every goal holds on the mean and on each seed run, but on fewer than :data:`MIN_SEEDS` seeds: the spread
over three could still overturn it."""
UNSETTLED = "unsettled"
"""The mean meets every goal but some seed misses one: the between-seed spread overturns it."""
MIN_SEEDS = 3


@dataclass(frozen=True)
class Claim:
    """One checked statement: ``experiment``'s ``recipe`` on ``dataset`` at ``policy``; ``setting`` is the
    operating point (default: dev-chosen within ``max_loss`` points); goals left None are not checked.
    ``dataset`` may be a list: the claim is then about a benchmark's mean (small GLUE's), and each goal reads
    the mean over those datasets, on the seeds that ran all of them.
    ``beats_static``: the claim is that early exit adds something at that point: its metric exceeds the best
    static alternative at no more FLOPs (``paper.with_static_alternative``), the paired 95 % interval above
    0 (mean bounds over seeds); the metric change against the baseline is then not a goal."""

    id: str
    statement: str
    source: str
    experiment: str
    dataset: str | list[str]
    recipe: str
    policy: str
    max_loss: float = 1.0
    min_flops_speedup: float | None = None
    min_time_saving: float | None = None
    convention: str = "fvcore"  # which FLOPs count the speed-up goal reads: fvcore, or FastBERT's
    setting: str | None = None
    beats_static: bool = False  # the goal is the gain over the best static alternative, not a loss budget

    @property
    def operating_point(self) -> str:
        return self.setting or f"{self.policy}, dev drop<={self.max_loss:g}pt"

    @property
    def datasets(self) -> list[str]:
        return [self.dataset] if isinstance(self.dataset, str) else list(self.dataset)


@dataclass(frozen=True)
class ClaimSet:
    """``claims.yaml``: the claims, the realized / predicted rule, and the tolerance for published claims."""

    claims: tuple[Claim, ...]
    realized_over_predicted: dict[str, Any]
    paper_tolerance_points: float

    @classmethod
    def load(cls, path: Path = CLAIMS) -> ClaimSet:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            return cls(
                tuple(Claim(**c) for c in data["claims"]),
                data["realized_over_predicted"],
                float(data["paper_tolerance_points"]),
            )
        except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
            raise FastExitError(
                f"{path} is not a claims file ({type(error).__name__}: {error}); see {CLAIMS}"
            ) from None


def published_claims(tolerance: float) -> list[Claim]:
    """One claim per published early-exit row with its baseline (``published.yaml``): the paper's speed-up
    (FastBERT's FLOPs convention, or the row's own) and metric change, at the paper's value or dev's choice."""
    from fastexit_bench.reporting.paper import published, published_effect

    sources, rows = published()
    claims = []
    for row in rows:
        if row["recipe"] == "baseline" or "policy" not in row:
            continue
        _, change, speedup = published_effect(row)
        value = row.get("value")
        claims.append(
            Claim(
                id=f"paper-{row['recipe']}-{row['dataset']}",
                statement=(
                    f"{sources[row['source']]['paper']}: {speedup:.1f}x fewer FLOPs at {change:+.1f} points on "
                    f"{row['dataset']} ({row.get('backbone') or sources[row['source']].get('backbone')}); "
                    f"here: at least that speed-up, no more than {tolerance:g} point(s) further below"
                ),
                source=sources[row["source"]]["where"],
                experiment="*",
                dataset=row["dataset"],
                recipe=row["recipe"],
                policy=row["policy"],
                max_loss=max(tolerance, tolerance - change),
                min_flops_speedup=round(speedup, 2),
                convention="fastbert",
                setting=f"{row['policy']}={value:g}" if value is not None else None,
            )
        )
    return claims


def _text(value: Any) -> str:
    """A CSV cell as text; an empty cell (read back as NaN) is ""."""
    return "" if pd.isna(value) else str(value)


def _mean(rows: pd.DataFrame, column: str) -> float | None:
    values = rows[column].dropna() if column in rows else pd.Series(dtype=float)
    return float(values.mean()) if len(values) else None


def _static_alternative(chosen: pd.DataFrame) -> dict[str, Any]:
    """The gain over the best static alternative (mean over seeds), where the report measured it."""
    if "gain_vs_static_points" not in chosen or chosen.gain_vs_static_points.isna().all():
        return {
            "static_alternative": None,
            "gain_vs_static_points": None,
            "gain_vs_static_points_low": None,
            "gain_vs_static_points_high": None,
        }
    return {
        "static_alternative": ", ".join(sorted(set(chosen.static_alternative.dropna().astype(str)))),
        **{
            c: _mean(chosen, c)
            for c in ("gain_vs_static_points", "gain_vs_static_points_low", "gain_vs_static_points_high")
        },
    }


def _measure(claim: Claim, chosen: pd.DataFrame) -> dict[str, Any]:
    """What the claim reads from ``chosen`` (one row per seed): means over the rows."""
    speedup = _mean(chosen, "speedup_fastbert" if claim.convention == "fastbert" else "speedup")
    one_dataset = chosen.dataset.nunique() == 1  # a mean over datasets has no one value
    return {
        "experiment": str(chosen.experiment.iloc[0]),
        "backbone": str(chosen.backbone.iloc[0]),
        "pooling": _text(chosen.pooling.iloc[0]) if "pooling" in chosen else "",  # "": FastBERT's branch
        "split": str(chosen.split.iloc[0]),
        "value": _mean(chosen, "value") if one_dataset else None,
        "flops_speedup": speedup,
        "flops_speedup_fvcore": _mean(chosen, "speedup"),
        "flops_speedup_fastbert": _mean(chosen, "speedup_fastbert"),
        "metric": str(chosen.metric.iloc[0]),
        "score": _mean(chosen, "score"),
        "delta_points": _mean(chosen, "delta_points"),
        "delta_points_low": _mean(chosen, "delta_points_low"),
        "delta_points_high": _mean(chosen, "delta_points_high"),
        **{f"realized_speedup_b{b}": _mean(chosen, f"realized_b{b}") for b in LATENCY_BATCH_SIZES},
        "degenerate": bool(chosen.degenerate.any()),
        **_static_alternative(chosen),
    }


def _checks(claim: Claim, measured: dict[str, Any], timing_required: bool = True) -> dict[str, bool]:
    """Each goal of ``claim`` on ``measured``; without ``timing_required`` an untimed measurement (a seed the
    workflow did not time) skips the time goals instead of failing them."""
    checks = {"model not majority-class": not measured["degenerate"]}
    if claim.beats_static:
        low = measured["gain_vs_static_points_low"]
        checks["beats the best static alternative at <= FLOPs (95% CI > 0)"] = low is not None and low > 0
    else:
        checks[f"metric change >= -{claim.max_loss:g} pt"] = (
            measured["delta_points"] >= -claim.max_loss - 1e-9
        )
    if claim.min_flops_speedup is not None:
        checks[f"FLOPs speed-up >= {claim.min_flops_speedup:g}x"] = (
            measured["flops_speedup"] >= claim.min_flops_speedup
        )
    timed = any(measured[f"realized_speedup_b{b}"] is not None for b in LATENCY_BATCH_SIZES)
    if claim.min_time_saving is not None and (timed or timing_required):
        for batch in LATENCY_BATCH_SIZES:
            realized = measured[f"realized_speedup_b{batch}"]
            checks[f"measured time saving b{batch} >= {claim.min_time_saving:.0%}"] = (
                realized is not None and 1 - 1 / realized >= claim.min_time_saving
            )
    return checks


def _spread(per_seed: dict[int, dict[str, Any]]) -> dict[str, float | None]:
    """Between-seed standard deviation (ddof 1) of each quantity a goal reads; None below two seeds."""
    out = {}
    for key in ("delta_points", "flops_speedup", "gain_vs_static_points"):
        values = [m[key] for m in per_seed.values() if m.get(key) is not None]
        out[key] = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return out


def evaluate(claim: Claim, points: pd.DataFrame) -> dict[str, Any]:
    """The claim's measurement and verdict from every seed's row at its operating point: met when every goal
    holds on the mean over seeds and on each seed, over at least :data:`MIN_SEEDS` seeds (fewer:
    :data:`PROVISIONAL`; a seed missing a goal the mean meets: :data:`UNSETTLED`)."""
    chosen = points[
        points.dataset.isin(claim.datasets)
        & (points.recipe == claim.recipe)
        & (points.setting == claim.operating_point)
        & ((points.experiment == claim.experiment) | (claim.experiment == "*"))
    ]
    whole = [seed for seed, rows in chosen.groupby("seed") if set(rows.dataset) == set(claim.datasets)]
    chosen = chosen[chosen.seed.isin(whole)]  # a benchmark's mean only over seeds that ran all its datasets
    result = {**asdict(claim), "operating_point": claim.operating_point, "seeds": int(chosen.seed.nunique())}
    if chosen.empty:
        return result | {"verdict": NOT_RUN, "checks": {}}
    measured = _measure(claim, chosen)
    checks = _checks(claim, measured)
    per_seed = {int(seed): _measure(claim, rows) for seed, rows in chosen.groupby("seed")}
    missed_by = [
        seed for seed, m in per_seed.items() if not all(_checks(claim, m, timing_required=False).values())
    ]
    if not all(checks.values()):
        verdict = MISSED
    elif missed_by:
        verdict = UNSETTLED
    else:
        verdict = MET if len(per_seed) >= MIN_SEEDS else PROVISIONAL
    seeds = {
        "per_seed": {
            seed: {k: m[k] for k in ("delta_points", "flops_speedup", "gain_vs_static_points")}
            for seed, m in per_seed.items()
        },
        "seeds_missing_a_goal": missed_by,
        "seed_sd": _spread(per_seed),
    }
    return result | measured | seeds | {"checks": checks, "verdict": verdict}


def realized_claims(points: pd.DataFrame, rule: dict[str, Any]) -> list[dict[str, Any]]:
    """Realized / FLOPs-predicted speed-up at each batch size, for every timed row that saves enough FLOPs."""
    results = []
    saving = points[points.speedup >= rule["for_speedup_at_least"]]
    for row in saving.itertuples(index=False):
        for batch in rule.get("batch_sizes", LATENCY_BATCH_SIZES):
            ratio = getattr(row, f"realized_over_predicted_b{batch}", np.nan)
            if ratio is None or np.isnan(ratio):
                continue
            results.append(
                {
                    "id": f"realized-{row.experiment}-{row.dataset}-{row.recipe}-b{batch}",
                    "experiment": row.experiment,
                    "dataset": row.dataset,
                    "recipe": row.recipe,
                    "operating_point": row.setting,
                    "batch_size": batch,
                    "flops_speedup": float(row.speedup),
                    "realized_over_predicted": float(ratio),
                    "verdict": MET if ratio >= rule["min"] else MISSED,
                    "statement": f"realized / FLOPs-predicted speed-up >= {rule['min']:g} at batch {batch}",
                }
            )
    return results


CLAIMS_RECORD_VERSION = 1


@dataclass
class ClaimsRecord(VersionedRecord):
    """``claims.json``: every claim's measurement and verdict, the realized / predicted checks, provenance."""

    claims: list[dict[str, Any]]
    realized: list[dict[str, Any]]
    provenance: Provenance = field(default_factory=Provenance)

    VERSION: ClassVar[int] = CLAIMS_RECORD_VERSION
    RERUN: ClassVar[str] = "fastexit-bench claims"


def check_all(points: pd.DataFrame, claim_set: ClaimSet) -> ClaimsRecord:
    """Every claim of ``claim_set`` whose experiment is among ``points`` (published claims on any), and the
    realized / predicted rule."""
    experiments = set(points.experiment)
    own = [c for c in claim_set.claims if c.experiment in experiments]
    paper = [
        c
        for c in published_claims(claim_set.paper_tolerance_points)
        if c.dataset in set(points.dataset) and c.recipe in set(points.recipe)
    ]
    return ClaimsRecord(
        [evaluate(c, points) for c in (*own, *paper)],
        realized_claims(points, claim_set.realized_over_predicted),
    )


POINTS = "_points.csv"
"""What `report` writes beside its tables: NAME_points.csv, every operating point per seed in numbers (what
`claims` reads), published with the report's record NAME.json."""

POINT_COLUMNS = {"experiment", "dataset", "recipe", "setting", "seed", "speedup"}
"""The columns of a report's points CSV that claims read."""


def read_points(paths: Sequence[Path]) -> pd.DataFrame:
    """The operating points of every report named (``report``'s NAME_points.csv); an unreadable file or one
    that lacks the columns claims read is a one-line error naming it."""
    frames = []
    for path in paths:
        _check_report_whole(Path(path))
        try:
            frames.append(pd.read_csv(path))
        except (OSError, ValueError, UnicodeDecodeError) as error:
            raise FastExitError(
                f"{path} cannot be read as a points CSV ({str(error).splitlines()[0]}); rerun "
                "`fastexit-bench report`"
            ) from None
    points = pd.concat(frames, ignore_index=True)
    missing = POINT_COLUMNS - set(points.columns)
    if missing:
        raise FastExitError(
            f"{', '.join(map(str, paths))} lack columns {sorted(missing)}: not written by "
            "`fastexit-bench report`; rerun it"
        )
    return points


def _check_report_whole(points: Path) -> None:
    """Refuse points whose report is not whole: no record beside them (a report stopped while publishing), or
    one that lists other points."""
    record = points.with_name(points.name.removesuffix(POINTS) + ".json")
    if not points.name.endswith(POINTS) or not record.is_file():
        raise FastExitError(
            f"{points} is not a report's NAME{POINTS} with its record NAME.json beside it; rerun "
            "`fastexit-bench report`"
        )
    check_file_set(record, read_json(record), "fastexit-bench report")


def check_claims(points_paths: Sequence[Path], claims_path: Path, config: dict[str, Any]) -> ClaimsRecord:
    """Every claim of ``claims_path`` (and the published ones) checked against the reports' points, with
    ``config`` and the inputs' hashes as provenance."""
    record = check_all(read_points(points_paths), ClaimSet.load(claims_path))
    inputs = {str(p): sha256_file(p) for p in (*points_paths, claims_path)}
    record.provenance = provenance.collect(config=config, inputs=inputs)
    return record


def _number(value: float | None, fmt: str) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else format(value, fmt)


def _seeds(claim: dict[str, Any]) -> str:
    """How many seeds, their spread (sd of Δ and of the FLOPs speed-up), and any seed that misses a goal."""
    sd = claim.get("seed_sd") or {}
    spread = [f"sd Δ {sd['delta_points']:.1f}"] if sd.get("delta_points") is not None else []
    spread += [f"sd x {sd['flops_speedup']:.2f}"] if sd.get("flops_speedup") is not None else []
    spread += (
        [f"seed {', '.join(map(str, claim['seeds_missing_a_goal']))} misses"]
        if claim.get("seeds_missing_a_goal")
        else []
    )
    return f"{claim['seeds']}" + (f" ({'; '.join(spread)})" if spread else "")


def claims_markdown(record: ClaimsRecord, inputs: Sequence[str]) -> str:
    """``claims.md``: one table of claims, one of realized / predicted checks, and what they were read from."""
    lines = [
        "# Claims",
        "",
        (
            "Generated by `fastexit-bench claims` from the reports' operating points "
            f"({', '.join(inputs)}); definitions in `fastexit_bench/reporting/claims.yaml`. Δ: mean metric change "
            "against the baseline in points over seeds, [mean 95% interval bounds]; FLOPs speed-up: fvcore at true "
            "lengths (FastBERT's convention for published claims); measured: the early-exit engine against the "
            "same model at full depth, mean over the seeds timed (the workflow times the first). vs static: the "
            "mean gain over the best alternative that does not decide per example at no more FLOPs (the same "
            "model's static exits and the fixed-depth models, chosen "
            "on dev), [mean paired 95% interval bounds], and which alternative. Verdicts: met (every goal on the mean "
            f"over seeds and on each seed, {MIN_SEEDS} seeds or more); {PROVISIONAL} (the same on fewer seeds: the "
            f"spread over {MIN_SEEDS} could overturn it); {UNSETTLED} (the mean meets every goal, a seed misses one); "
            "missed; not run. Seeds: how many, with the between-seed standard deviation of Δ and of the speed-up."
        ),
        "",
        (
            "| claim | verdict | experiment | model | operating point | seeds | Δ (pt) [95% CI] | vs static (pt) "
            "[95% CI] | FLOPs speed-up "
            f"| measured speed-up {' / '.join(f'b{b}' for b in LATENCY_BATCH_SIZES)} | checks failed | statement |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in record.claims:
        failed = "; ".join(name for name, ok in c["checks"].items() if not ok)
        delta = (
            f"{_number(c.get('delta_points'), '+.1f')} [{_number(c.get('delta_points_low'), '+.1f')}, "
            f"{_number(c.get('delta_points_high'), '+.1f')}]"
            if c["verdict"] != NOT_RUN
            else ""
        )
        static = (
            f"{_number(c.get('gain_vs_static_points'), '+.1f')} [{_number(c.get('gain_vs_static_points_low'), '+.1f')}, "
            f"{_number(c.get('gain_vs_static_points_high'), '+.1f')}] ({c['static_alternative']})"
            if c.get("static_alternative")
            else ""
        )
        datasets = c["dataset"] if isinstance(c["dataset"], str) else f"mean of {', '.join(c['dataset'])}"
        model = f"{datasets} {c['recipe']}" + (f" ({c['pooling']} pooling)" if c.get("pooling") else "")
        measured = " / ".join(
            _number(c.get(f"realized_speedup_b{b}"), ".2f") or "–" for b in LATENCY_BATCH_SIZES
        )
        value = f" (value {_number(c['value'], '.3g')})" if c.get("value") is not None else ""
        speedup = f"{_number(c['flops_speedup'], '.2f')}x" if c.get("flops_speedup") is not None else ""
        lines.append(
            f"| {c['id']} | **{c['verdict']}** | {c.get('experiment', '')} | {model} | "
            f"{c['operating_point']}{value} | {_seeds(c)} | {delta} | {static} | "
            f"{speedup} | {measured} | {failed} | {c['statement']} |"
        )
    lines += ["", "## Realized ÷ FLOPs-predicted speed-up, every timed row that saves enough FLOPs", ""]
    if not record.realized:
        lines.append("No timed row saves enough FLOPs to be checked.")
    else:
        lines += [
            "| experiment | model | operating point | batch | FLOPs speed-up | realized ÷ predicted | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['experiment']} | {r['dataset']} {r['recipe']} | {r['operating_point']} | {r['batch_size']} | "
            f"{r['flops_speedup']:.2f}x | {r['realized_over_predicted']:.2f} | **{r['verdict']}** |"
            for r in record.realized
        ]
    return "\n".join(lines) + "\n"
