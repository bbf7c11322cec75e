"""``fastexit-bench report``: one experiment's tables (Markdown, LaTeX, CSV) and plots (PNG, PDF)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench.cli.common import config_of, emit, subcommand


def add_parser(commands) -> None:
    parser = subcommand(
        commands, "report", "tables and plots of one experiment from its sweeps and evaluation artefacts",
        "  fastexit-bench report --name quick --sweeps results/quick/sweeps/*.csv \\\n"
        "      --artifacts results/quick/exits/*.npz --tables results/tables --plots results/plots/quick\n",
        run_report,
    )
    parser.add_argument("--name", required=True, help="experiment name: the tables are TABLES/NAME.{md,tex,csv}")
    parser.add_argument("--sweeps", nargs="+", type=Path, required=True, help="CSVs from `fastexit-bench sweep`")
    parser.add_argument("--artifacts", nargs="+", type=Path, required=True, help="artefacts from `evaluate`")
    parser.add_argument("--tables", type=Path, required=True, help="folder for the tables")
    parser.add_argument("--plots", type=Path, required=True, help="folder for the plots")


def run_report(args: argparse.Namespace) -> None:
    import pandas as pd

    from fastexit_bench import provenance, tables
    from fastexit_bench.evaluation import ExitArtifact
    from fastexit_bench.io import sha256_file, write_json
    from fastexit_bench.plots import exit_shares, layer_metric, metric_vs_flops

    sweep = pd.concat([pd.read_csv(path) for path in args.sweeps], ignore_index=True)
    layers = tables.layer_table([ExitArtifact.load(path) for path in args.artifacts])
    summary = tables.mean_std(tables.policy_summary(sweep), [*tables.KEYS, "metric"])
    per_layer = tables.mean_std(layers, ["dataset", "split", "backbone", "recipe", "metric"])
    flops_source = ", ".join(sorted(sweep.flops_source.unique()))
    legend = ("auc_vs_static: area under the best-metric-within-FLOPs-budget curve relative to static truncation "
              "(1 = no better than truncating). speedup_drop<=Npt: largest FLOPs speed-up whose dev metric is "
              f"within N points of full depth. FLOPs: {flops_source}. Values are mean ± std over seeds.")
    written = tables.write_table(summary, args.tables / args.name, f"{args.name}: exit policies", [legend])
    written += tables.write_table(per_layer, args.tables / f"{args.name}_layers",
                                  f"{args.name}: metric at every exit (mean ± std over seeds)")
    args.plots.mkdir(parents=True, exist_ok=True)
    written += metric_vs_flops(sweep, args.plots / "metric_vs_flops")
    written += exit_shares(sweep, args.plots / "exit_shares")
    written += layer_metric(layers, args.plots / "layer_metric")
    inputs = {str(p): sha256_file(p) for p in (*args.sweeps, *args.artifacts)}
    write_json(args.tables / f"{args.name}.json", {
        "provenance": provenance.collect(config=config_of(args), inputs=inputs),
        "outputs": [str(p) for p in written]})
    emit(summary.to_string(index=False))
    emit("wrote " + ", ".join(str(p) for p in written))
