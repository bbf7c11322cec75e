"""One experiment's report: every table and plot from its sweeps, artefacts and timings, and the record of what
was read. The legends that say how to read each table live here, beside the code that fills it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fastexit_bench import provenance
from fastexit_bench.analysis.artifact import ArtifactMetadata, ExitArtifact, ModelIdentity
from fastexit_bench.analysis.calibration import BINS
from fastexit_bench.analysis.sweep import SweepFiles, SweepResult
from fastexit_bench.analysis.uncertainty import RESAMPLES
from fastexit_bench.errors import RecordError
from fastexit_bench.io import file_set, read_json, sha256_file
from fastexit_bench.reporting import page, paper, tables
from fastexit_bench.reporting.claims import POINTS
from fastexit_bench.reporting.paper import TableSpec
from fastexit_bench.reporting.plots import FIGURE_SUFFIXES, REPORT_PLOTS, ReportData
from fastexit_bench.runtime.config import LatencyRecord

TABLE_PARTS = ("", "_layers", "_calibration", "_paper", "_exits")
"""What `build_report` writes to TABLES: NAME<part>.{md,tex,csv} (and NAME.json, its record, and NAME.html,
its results page); the workflow lists the same files, so adding a table takes `tables.py` and this module."""
PAGE_ORDER = (
    ("reported split", "_paper"),
    ("policies", ""),
    ("figures", None),
    ("every exit", "_layers"),
    ("calibration", "_calibration"),
    ("where inputs exit", "_exits"),
)
"""The results page's sections, results on the reported split first: (anchor, table part; None: the figures)."""
INTERVAL_NOTE = (
    f"[a, b]: 95% bootstrap interval over the examples ({RESAMPLES} seeded resamples; bounds "
    "averaged over seeds)."
)


def policy_legend(flops_source: str) -> str:
    return (
        f"Policies best first within each model, by gain_vs_static_pt: the mean gain, in metric points, of the "
        f"policy's best dev metric within a FLOPs budget over static truncation's, over budgets from layer 1 "
        f"to full depth (0 = no better than truncating; bounded, defined for every model). Where the rank and "
        f"the speedup_drop columns disagree, both are right: a policy can lose to truncation on average over "
        f"the budgets (ranked below static) and still reach a larger speed-up within N points at one of them. Split: every number "
        f"here is on the selection split (dev, or a share of train), where policies are chosen; the paper table "
        f"reports the held-out split. A model whose exits before the last were not trained (baseline, "
        f"truncated, distilled) shows its static row only ({tables.UNTRAINED_EXITS!r}). "
        f"speedup_drop<=Npt: largest FLOPs speed-up whose dev metric is within N points of full depth "
        f"({tables.NOT_A_WIN} for a model flagged majority-class: no accuracy to trade). Flags: "
        f"majority-class = full depth within noise of always predicting the majority class (paired "
        f"bootstrap interval of the gain reaches 0); never exits early = no swept value sends an example "
        f"out before the last layer. {INTERVAL_NOTE} ± std over seeds where there are at least two. "
        f"FLOPs: {flops_source} (speed-ups are ratios of multiply-add counts)."
    )


CALIBRATION_LEGEND = (
    f"ece_k: the gap between exit k's top probability and its accuracy, averaged over {BINS} equal-width "
    f"confidence bins weighted by examples (0 = calibrated; the estimate is biased upward on small splits). "
    f"The sweep's *_calibrated policies divide each exit's logits by a temperature fitted on dev. {INTERVAL_NOTE}"
)


def paper_legend(timed: bool) -> str:
    latency_note = (
        "Measured time saving / speed-up: the early-exit engine against the same model at full depth, "
        "same batches, one process (CPU perf_counter or CUDA events); mean over the seeds timed (the workflow "
        "times the first seed)."
        if timed
        else "No latency measured for this experiment."
    )
    return (
        f"Each model at its paper's exit policy: fixed values, or the fastest value within N points of full "
        f"depth on the selection split ('dev drop<=Npt': dev, or a seeded share of train where dev is the "
        f"reported split), reported on the other split. FLOPs (FastBERT "
        f"conv.): Linear layers only, inputs padded to 128 tokens, two FLOPs per multiply-add, as FastBERT "
        f"counts; speed-up (fvcore): all matmuls incl. attention at true lengths (a ratio: the same whether a "
        f"multiply-add counts one or two). Paper numbers are set only beside rows of the same dataset, "
        f"method, operating point and backbone family; compare the Δ against each one's own baseline. "
        f"{latency_note} [a, b]: 95% bootstrap interval over the reported examples; the Δ's is a "
        f"paired bootstrap interval (both models on the same resamples) where both artefacts are given, else "
        f"both standard errors combined as if independent (wider); "
        f"{paper.NOT_SIGNIFICANT}: the Δ's interval contains 0. majority-class: the model's full depth is "
        f"within noise of always predicting the majority class on dev."
    )


def exits_legend(stored_texts: bool) -> str:
    return (
        "Each early-exit model at the operating point of its paper's policy that exits earliest. Per exit "
        "layer: the examples that leave there, their share, the metric on them (95% bootstrap interval) and "
        "the first texts among them. "
        + (
            ""
            if stored_texts
            else "These artefacts were written before evaluate stored texts; evaluate again to see them."
        )
    )


@dataclass(frozen=True)
class ReportOutputs:
    """Where one experiment's report goes: TABLES/NAME<part>.{md,tex,csv}, TABLES/NAME_points.csv, the record
    TABLES/NAME.json, and PLOTS/<plot>.{png,pdf}."""

    name: str
    tables: Path
    plots: Path

    @property
    def record(self) -> Path:
        return self.tables / f"{self.name}.json"

    @property
    def page(self) -> Path:
        return self.tables / f"{self.name}.html"

    @property
    def points(self) -> Path:
        return self.tables / f"{self.name}{POINTS}"

    def table(self, part: str) -> Path:
        return self.tables / f"{self.name}{part}"

    def plot(self, name: str) -> Path:
        return self.plots / name

    def files(self) -> list[Path]:
        return [
            self.record,
            self.page,
            self.points,
            *(self.table(p).with_suffix(s) for p in TABLE_PARTS for s in tables.TABLE_SUFFIXES),
            *(self.plot(p).with_suffix(s) for p in REPORT_PLOTS for s in FIGURE_SUFFIXES),
        ]


def read_timings(paths: Sequence[Path]) -> pd.DataFrame:
    """Every timed row of `latency`'s records, with the run it belongs to."""
    records = [LatencyRecord.from_dict(read_json(path), str(path)) for path in paths]
    return pd.DataFrame(
        [
            {"dataset": r.dataset, "recipe": r.recipe, "seed": r.seed, **asdict(row)}
            for r in records
            for row in r.rows
        ]
    )


def build_report(
    out: ReportOutputs,
    sweeps: Sequence[Path],
    artifact_paths: Sequence[Path],
    latency: Sequence[Path],
    spec: TableSpec,
    config: dict[str, Any],
) -> tuple[pd.DataFrame, list[Path]]:
    """Write every table and plot of ``out`` and its record (``config`` as provenance), published together
    (``io.FileSet``: a run stopped midway leaves the old report whole, or no record); return the policy summary
    and the files written."""
    results = read_sweeps(sweeps)
    selection = pd.concat([result.selection for result in results], ignore_index=True)
    # refuses, before the minutes of tables, sweeps without the reference model
    compared = paper.against_baseline(paper.paper_points(selection, spec.reference), spec.reference)
    artifacts = [ExitArtifact.load(path) for path in artifact_paths]
    check_same_models(results, sweeps, artifacts, artifact_paths)
    read = [path for sweep_csv in sweeps for path in SweepFiles(sweep_csv).all()]
    inputs = {str(p): sha256_file(p) for p in (*read, *artifact_paths, *latency)}
    with file_set(out.record) as outputs:
        staged = ReportOutputs(out.name, outputs.folder(out.tables), outputs.folder(out.plots))
        summary = _write_report(staged, results, compared, artifacts, latency, spec)
        written = outputs.publish({"provenance": provenance.collect(config=config, inputs=inputs)})
    return summary, written


def read_sweeps(paths: Sequence[Path]) -> list[SweepResult]:
    """Each sweep, once; one given twice, or one without rows, is refused (it would count a model twice, or
    report nothing as a result)."""
    seen = set()
    for path in paths:
        if Path(path).resolve() in seen:
            raise RecordError(f"sweep {path} is given twice; pass each model's sweep once")
        seen.add(Path(path).resolve())
    results = [SweepResult.load(SweepFiles(path)) for path in paths]
    for path, result in zip(paths, results, strict=True):
        if result.table.empty or result.selection.empty:
            raise RecordError(f"sweep {path} has no rows (a header only); rerun `fastexit-bench sweep`")
    return results


def check_same_models(
    results: Sequence[SweepResult],
    sweeps: Sequence[Path],
    artifacts: Sequence[ExitArtifact],
    artifact_paths: Sequence[Path],
) -> None:
    """Refuse artefacts of a model other than the one a sweep of the same dataset, recipe, backbone and seed
    read: the report joins them on those keys, so it would mix two models' numbers in one row."""
    swept = {}
    for path, result in zip(sweeps, results, strict=True):
        model = ModelIdentity.of(ArtifactMetadata.from_dict(result.record.artifact, str(path)))
        key = (model.dataset, model.recipe, model.backbone, model.seed)
        if key in swept:
            swept[key][0].check_same(model, swept[key][1], path)
        swept[key] = (model, path)
    for path, artifact in zip(artifact_paths, artifacts, strict=True):
        model = ModelIdentity.of(artifact.metadata)
        key = (model.dataset, model.recipe, model.backbone, model.seed)
        if key in swept:
            swept[key][0].check_same(model, swept[key][1], path)


def _write_report(
    out: ReportOutputs,
    results: Sequence[SweepResult],
    compared: pd.DataFrame,
    artifacts: Sequence[ExitArtifact],
    latency: Sequence[Path],
    spec: TableSpec,
) -> pd.DataFrame:
    """Every table, the points CSV and every plot of ``out`` (a staging folder), ``compared``: the paper
    operating points against the reference; the policy summary."""
    sweep = pd.concat([result.table for result in results], ignore_index=True)
    layers = tables.layer_table(artifacts)
    summary = tables.mean_std(
        tables.policy_summary(results), [*tables.KEYS, "metric"], missing=tables.NOT_A_WIN
    )
    per_layer = tables.mean_std(layers, ["dataset", "split", "backbone", "recipe", "pooling", "metric"])
    flops_source = ", ".join(sorted(sweep.flops_source.unique()))
    tables.write_table(
        summary, out.table(""), f"{out.name}: exit policies (selection split)", [policy_legend(flops_source)]
    )
    tables.write_table(
        per_layer,
        out.table("_layers"),
        f"{out.name}: metric at every exit (mean ± std over seeds)",
        [INTERVAL_NOTE],
    )
    tables.write_table(
        tables.mean_std(tables.calibration_table(artifacts), ["dataset", "split", "backbone", "recipe"]),
        out.table("_calibration"),
        f"{out.name}: expected calibration error of every exit (mean ± std over seeds)",
        [CALIBRATION_LEGEND],
    )
    points = paper.with_latency(
        paper.paired_deltas(paper.with_pooling(compared, artifacts), spec.reference, artifacts),
        read_timings(latency),
    )
    points = paper.with_static_alternative(points, artifacts)
    tables.write_table(
        paper.paper_table(points, spec),
        out.table("_paper"),
        f"{out.name}: paper layout ({spec.layout}), mean ± std over seeds, [95% interval over examples]",
        [
            paper_legend(bool(latency)),
            *paper.partial_data_notes(artifacts),
            *paper.source_notes(),
            *paper.other_backbone_notes(points),
        ],
    )
    points.assign(experiment=out.name).to_csv(out.points, index=False)
    tables.write_table(
        tables.exits_table(points, artifacts),
        out.table("_exits"),
        f"{out.name}: which inputs exit where (first seed, reported split)",
        [exits_legend(any(art.texts is not None for art in artifacts))],
    )
    figures = ReportData(sweep, layers, artifacts)
    for name in REPORT_PLOTS:
        REPORT_PLOTS.get(name)(figures, out.plot(name))
    _write_page(out)
    return summary


def _write_page(out: ReportOutputs) -> None:
    """NAME.html from the tables and figures just written (`PAGE_ORDER`), each figure with its caption."""
    figures = "".join(
        page.figure_html(
            out.plot(name).with_suffix(".png"), name.replace("_", " "), page.caption_html(name, out.name)
        )
        for name in REPORT_PLOTS
    )
    sections = [
        (
            anchor,
            figures
            if part is None
            else page.markdown_html(out.table(part).with_suffix(".md").read_text(), 1),
        )
        for anchor, part in PAGE_ORDER
    ]
    lead = (
        f"<p>Experiment <strong>{out.name}</strong>. The paper-layout table reports the held-out split; the "
        "policy table, figures and per-exit tables are on the split operating points are chosen on (each names "
        "its split). Tables as files: NAME.{md,tex,csv} beside this page; figures as PNG and PDF.</p>"
    )
    page.write_page(out.page, f"{out.name}: results", lead.replace("NAME", out.name), sections)
