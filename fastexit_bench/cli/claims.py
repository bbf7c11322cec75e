"""``fastexit-bench claims``: check the targets and published claims against the reports' operating points."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench.cli.common import add_overwrite_arg, config_of, emit, subcommand


def add_parser(commands) -> None:
    from fastexit_bench.reporting.claims import CLAIMS

    parser = subcommand(
        commands,
        "claims",
        "met / missed for every target and published claim, from the reports' points",
        "  fastexit-bench claims --points results/tables/*_points.csv --out results/claims\n"
        "writes OUT.md and OUT.json; claims of experiments not among the points are left out.\n",
        run_claims,
    )
    parser.add_argument(
        "--points",
        nargs="+",
        type=Path,
        required=True,
        help="NAME_points.csv files written by `fastexit-bench report`",
    )
    parser.add_argument("--claims", type=Path, default=CLAIMS, help="claims file (default: the suite's own)")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output stem: OUT.md, OUT.html (the same as a page) and OUT.json",
    )
    add_overwrite_arg(parser)


def run_claims(args: argparse.Namespace) -> None:
    from fastexit_bench.io import check_output_file, file_set
    from fastexit_bench.reporting.claims import check_claims, claims_markdown
    from fastexit_bench.reporting.page import markdown_page

    outputs = [args.out.with_suffix(".md"), args.out.with_suffix(".html"), args.out.with_suffix(".json")]
    for path in outputs:
        check_output_file(path, [*args.points, args.claims], overwrite=args.overwrite)
    record = check_claims(args.points, args.claims, config_of(args))
    markdown = claims_markdown(record, [str(p) for p in args.points])
    with file_set(outputs[2]) as files:
        files.path(outputs[0]).write_text(markdown, encoding="utf-8")
        markdown_page(files.path(outputs[1]), markdown)
        files.publish(record.to_dict())
    for claim in record.claims:
        emit(f"{claim['verdict']:8} {claim['id']}")
    emit("wrote " + ", ".join(map(str, outputs)))
