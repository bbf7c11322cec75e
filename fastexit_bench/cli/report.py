"""``fastexit-bench report``: one experiment's tables (Markdown, LaTeX, CSV) and plots (PNG, PDF)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench.cli.common import add_overwrite_arg, config_of, emit, file_name, subcommand
from fastexit_bench.reporting.paper import LAYOUTS, TableSpec


def add_parser(commands) -> None:
    parser = subcommand(
        commands,
        "report",
        "tables and plots of one experiment from its sweeps and evaluation artefacts",
        "  fastexit-bench report --name quick --sweeps results/quick/sweeps/*[0-9].csv \\\n"
        "      --artifacts results/quick/exits/*.npz --tables results/tables --plots results/plots/quick\n"
        "Each sweep CSV is read with the files `sweep` wrote beside it (.scores.csv, .selection.csv, .json).\n",
        run_report,
    )
    parser.add_argument(
        "--name",
        required=True,
        type=file_name,
        help="experiment name: the tables are TABLES/NAME.{md,tex,csv}",
    )
    parser.add_argument(
        "--sweeps", nargs="+", type=Path, required=True, help="CSVs from `fastexit-bench sweep`"
    )
    parser.add_argument("--artifacts", nargs="+", type=Path, required=True, help="artefacts from `evaluate`")
    parser.add_argument("--tables", type=Path, required=True, help="folder for the tables")
    parser.add_argument("--plots", type=Path, required=True, help="folder for the plots")
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default=TableSpec.layout,
        help="paper table (TABLES/NAME_paper.*): FastBERT Table 2 columns (accuracy, FLOPs, speed-up) "
        "or DeeBERT Table 1 columns (metric change, time saving)",
    )
    parser.add_argument(
        "--reference",
        default=TableSpec.reference,
        help="the recipe whose full depth the paper table measures every row against",
    )
    parser.add_argument(
        "--latency", nargs="*", type=Path, default=[], help="JSONs from `fastexit-bench latency`"
    )
    add_overwrite_arg(parser)


def run_report(args: argparse.Namespace) -> None:
    from fastexit_bench.io import check_output_file, exclusive_use
    from fastexit_bench.reporting.build import ReportOutputs, build_report

    out = ReportOutputs(args.name, args.tables, args.plots)
    for path in out.files():
        check_output_file(path, [*args.sweeps, *args.artifacts, *args.latency], overwrite=args.overwrite)
    with exclusive_use(out.record, "`fastexit-bench report`"):
        summary, written = build_report(
            out,
            args.sweeps,
            args.artifacts,
            args.latency,
            TableSpec(args.layout, args.reference),
            config_of(args),
        )
    emit(
        f"{len(summary)} policy rows in {out.table('').with_suffix('.md')}; the paper layout in "
        f"{out.table('_paper').with_suffix('.md')}; every table and figure on one page: {out.page}"
    )
    emit(f"wrote {len(written)} files: " + ", ".join(str(p) for p in written))
