"""``fastexit-bench report``: one experiment's tables (Markdown, LaTeX, CSV) and plots (PNG, PDF)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench.cli.common import add_overwrite_arg, config_of, emit, subcommand
from fastexit_bench.reporting import PLOTS, POINTS, TABLE_PARTS
from fastexit_bench.reporting.paper import LAYOUTS, TableSpec


def add_parser(commands) -> None:
    parser = subcommand(
        commands, "report", "tables and plots of one experiment from its sweeps and evaluation artefacts",
        "  fastexit-bench report --name quick --sweeps results/quick/sweeps/*[0-9].csv \\\n"
        "      --artifacts results/quick/exits/*.npz --tables results/tables --plots results/plots/quick\n"
        "Each sweep CSV is read with the files `sweep` wrote beside it (.scores.csv, .selection.csv, .json).\n",
        run_report,
    )
    parser.add_argument("--name", required=True, help="experiment name: the tables are TABLES/NAME.{md,tex,csv}")
    parser.add_argument("--sweeps", nargs="+", type=Path, required=True, help="CSVs from `fastexit-bench sweep`")
    parser.add_argument("--artifacts", nargs="+", type=Path, required=True, help="artefacts from `evaluate`")
    parser.add_argument("--tables", type=Path, required=True, help="folder for the tables")
    parser.add_argument("--plots", type=Path, required=True, help="folder for the plots")
    parser.add_argument("--layout", choices=LAYOUTS, default=TableSpec.layout,
                        help="paper table (TABLES/NAME_paper.*): FastBERT Table 2 columns (accuracy, FLOPs, speed-up) "
                        "or DeeBERT Table 1 columns (metric change, time saving)")
    parser.add_argument("--reference", default=TableSpec.reference,
                        help="the recipe whose full depth the paper table measures every row against")
    parser.add_argument("--latency", nargs="*", type=Path, default=[], help="JSONs from `fastexit-bench latency`")
    add_overwrite_arg(parser)


def output_stems(args: argparse.Namespace) -> tuple[dict[str, Path], dict[str, Path]]:
    """The tables TABLES/NAME<part> and the plots PLOTS/<plot> (``reporting.TABLE_PARTS``, ``reporting.PLOTS``;
    each written with its suffixes), by part and plot name."""
    return ({part: args.tables / f"{args.name}{part}" for part in TABLE_PARTS},
            {name: args.plots / name for name in PLOTS})


def run_report(args: argparse.Namespace) -> None:
    from fastexit_bench.io import check_output_file, exclusive_use
    from fastexit_bench.reporting.plots import FIGURE_SUFFIXES
    from fastexit_bench.reporting.tables import TABLE_SUFFIXES

    table_stems, plot_stems = output_stems(args)
    record = args.tables / f"{args.name}.json"
    inputs = [*args.sweeps, *args.artifacts, *args.latency]
    for path in [record, args.tables / f"{args.name}{POINTS}", *(stem.with_suffix(s) for stem in table_stems.values() for s in TABLE_SUFFIXES),
                 *(stem.with_suffix(s) for stem in plot_stems.values() for s in FIGURE_SUFFIXES)]:
        check_output_file(path, inputs, overwrite=args.overwrite)
    with exclusive_use(record, "`fastexit-bench report`"):
        _report(args, table_stems, plot_stems, record)


def _report(args: argparse.Namespace, table_stems: dict[str, Path], plot_stems: dict[str, Path],
            record: Path) -> None:
    import pandas as pd

    from fastexit_bench import provenance
    from fastexit_bench.analysis.artifact import ExitArtifact
    from fastexit_bench.analysis.calibration import BINS
    from fastexit_bench.analysis.sweep import SweepFiles, SweepResult
    from fastexit_bench.analysis.uncertainty import RESAMPLES
    from fastexit_bench.io import atomic_path, read_json, sha256_file, write_json
    from fastexit_bench.reporting import paper, tables
    from fastexit_bench.reporting.plots import (
        calibration,
        exit_shares,
        layer_metric,
        method_fronts,
        metric_vs_flops,
    )

    results = [SweepResult.load(SweepFiles(path)) for path in args.sweeps]
    sweep = pd.concat([result.table for result in results], ignore_index=True)
    selection = pd.concat([result.selection for result in results], ignore_index=True)
    artifacts = [ExitArtifact.load(path) for path in args.artifacts]
    layers = tables.layer_table(artifacts)
    summary = tables.mean_std(tables.policy_summary(results), [*tables.KEYS, "metric"], missing=tables.NOT_A_WIN)
    per_layer = tables.mean_std(layers, ["dataset", "split", "backbone", "recipe", "pooling", "metric"])
    flops_source = ", ".join(sorted(sweep.flops_source.unique()))
    interval_note = (f"[a, b]: 95% bootstrap interval over the examples ({RESAMPLES} seeded resamples; bounds "
                     "averaged over seeds).")
    legend = (f"Policies best first within each model. gain_vs_static_pt: mean gain, in metric points, of the "
              f"policy's best dev metric within a FLOPs budget over static truncation's, over budgets from layer 1 "
              f"to full depth (0 = no better than truncating; bounded, defined for every model). "
              f"speedup_drop<=Npt: largest FLOPs speed-up whose dev metric is within N points of full depth "
              f"({tables.NOT_A_WIN} for a model flagged majority-class: no accuracy to trade). Flags: "
              f"majority-class = full depth within noise of always predicting the majority class (paired "
              f"bootstrap interval of the gain reaches 0); never exits early = no swept value sends an example "
              f"out before the last layer. {interval_note} ± std over seeds where there are at least two. "
              f"FLOPs: {flops_source}.")
    written = tables.write_table(summary, table_stems[""], f"{args.name}: exit policies", [legend])
    written += tables.write_table(per_layer, table_stems["_layers"],
                                  f"{args.name}: metric at every exit (mean ± std over seeds)", [interval_note])
    written += tables.write_table(
        tables.mean_std(tables.calibration_table(artifacts), ["dataset", "split", "backbone", "recipe"]),
        table_stems["_calibration"], f"{args.name}: expected calibration error of every exit (mean ± std over seeds)",
        [(f"ece_k: the gap between exit k's top probability and its accuracy, averaged over {BINS} equal-width "
          f"confidence bins weighted by examples (0 = calibrated; the estimate is biased upward on small splits). "
          f"The sweep's *_calibrated policies divide each exit's logits by a temperature fitted on dev. "
          f"{interval_note}")])
    spec = TableSpec(args.layout, args.reference)
    timings = pd.DataFrame([{**{k: record[k] for k in ("dataset", "recipe", "seed")}, **row}
                            for record in map(read_json, args.latency) for row in record["rows"]])
    compared = paper.against_baseline(paper.paper_points(selection, spec.reference), spec.reference)
    points = paper.with_latency(paper.paired_deltas(paper.with_pooling(compared, artifacts), spec.reference,
                                                    artifacts), timings)
    latency_note = ("Measured time saving / speed-up: the early-exit engine against the same model at full depth, "
                    "same batches, one process (CPU perf_counter or CUDA events); first seed only."
                    if args.latency else "No latency measured for this experiment.")
    written += tables.write_table(
        paper.paper_table(points, spec), table_stems["_paper"],
        f"{args.name}: paper layout ({spec.layout}), mean ± std over seeds, [95% interval over examples]",
        [(f"Each model at its paper's exit policy: fixed values, or the fastest value within N points of full "
         f"depth on the selection split ('dev drop<=Npt': dev, or a seeded share of train where dev is the reported "
         f"split), reported on the other split. FLOPs (FastBERT "
         f"conv.): Linear layers only, inputs padded to 128 tokens, as FastBERT counts; speed-up (fvcore): all "
         f"matmuls incl. attention at true lengths. Paper numbers are set only beside rows of the same dataset, "
         f"method, operating point and backbone family; compare the Δ against each one's own baseline. "
         f"{latency_note} [a, b]: 95% bootstrap interval over the reported examples; the Δ's is a "
         f"paired bootstrap interval (both models on the same resamples) where both artefacts are given, else "
         f"both standard errors combined as if independent (wider); "
         f"{paper.NOT_SIGNIFICANT}: the Δ's interval contains 0. majority-class: the model's full depth is within "
         f"noise of always predicting the majority class on dev."),
         *paper.source_notes(), *paper.other_backbone_notes(points)])
    points_csv = args.tables / f"{args.name}{POINTS}"
    with atomic_path(points_csv) as tmp:
        points.assign(experiment=args.name).to_csv(tmp, index=False)
    written.append(points_csv)
    stored = any(art.texts is not None for art in artifacts)
    written += tables.write_table(
        tables.exits_table(points, artifacts), table_stems["_exits"],
        f"{args.name}: which inputs exit where (first seed, reported split)",
        [("Each early-exit model at the operating point of its paper's policy that exits earliest. Per exit "
          "layer: the examples that leave there, their share, the metric on them (95% bootstrap interval) and "
          "the first texts among them. " + ("" if stored else "These artefacts were written before evaluate "
                                                              "stored texts; evaluate again to see them."))])
    args.plots.mkdir(parents=True, exist_ok=True)
    written += metric_vs_flops(sweep, plot_stems["metric_vs_flops"])
    written += exit_shares(sweep, plot_stems["exit_shares"])
    written += layer_metric(layers, plot_stems["layer_metric"])
    written += calibration(artifacts, plot_stems["calibration"])
    written += method_fronts(sweep, plot_stems["method_fronts"])
    read = [path for sweep_csv in args.sweeps for path in SweepFiles(sweep_csv).all()]
    inputs = {str(p): sha256_file(p) for p in (*read, *args.artifacts, *args.latency)}
    write_json(record, {
        "provenance": provenance.collect(config=config_of(args), inputs=inputs),
        "outputs": [str(p) for p in written]})
    emit(summary.to_string(index=False))
    emit("wrote " + ", ".join(str(p) for p in written))
