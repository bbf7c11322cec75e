"""``fastexit-bench leaderboard``: every exit policy on every early-exit model's artefacts, ranked."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench.analysis.policies import DEFAULT_POLICIES
from fastexit_bench.cli.common import add_overwrite_arg, config_of, emit, names, subcommand

REFERENCE_ARTEFACTS = "results/reference"


def add_parser(commands) -> None:
    parser = subcommand(
        commands,
        "leaderboard",
        "rank exit policies over the early-exit models of evaluation artefacts (no model needed)",
        "  fastexit-bench leaderboard --out results/tables/leaderboard.md\n"
        "  fastexit-bench leaderboard results/reference/sst2_full --policies entropy,my_pkg.policies:Margin "
        "--out board.md\n"
        "Finds every early-exit model's selection and reported artefacts (*.npz, given or in the folders), fits and\n"
        "chooses each policy on the selection split, measures on the reported split, and writes OUT (the ranked\n"
        "table with its definitions), OUT.tex/.csv, OUT_models.csv (each model), OUT.png/.pdf and OUT.json.\n",
        run_leaderboard,
    )
    parser.add_argument(
        "artifacts",
        nargs="*",
        type=Path,
        default=[Path(REFERENCE_ARTEFACTS)],
        help="evaluation artefacts (*.npz), or folders searched for them recursively",
    )
    parser.add_argument(
        "--policies",
        type=names,
        help="built-in names or package.module:Class, comma-separated "
        f"(None: those of {','.join(DEFAULT_POLICIES)} that apply to each model); static is always added",
    )
    parser.add_argument("--out", type=Path, required=True, help="the ranked table to write (NAME.md)")
    add_overwrite_arg(parser)


def run_leaderboard(args: argparse.Namespace) -> None:
    from fastexit_bench.io import check_output_file, exclusive_use
    from fastexit_bench.reporting.leaderboard import build_leaderboard, output_paths, write_leaderboard

    for path in output_paths(args.out):
        check_output_file(path, inputs=args.artifacts, overwrite=args.overwrite)
    with exclusive_use(args.out, "`fastexit-bench leaderboard`"):
        board = build_leaderboard(args.artifacts, args.policies, config_of(args), log=emit)
        write_leaderboard(board, args.out)
    emit(board.ranking.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    emit(f"wrote {args.out} and its companions")
