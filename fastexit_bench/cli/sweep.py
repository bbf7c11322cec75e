"""``fastexit-bench sweep``: every policy x parameter on one evaluation artefact, operating points and scores."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench.analysis.policies import DEFAULT_POLICIES
from fastexit_bench.analysis.sweep import SweepFiles
from fastexit_bench.cli.common import (
    add_operating_point_args,
    add_overwrite_arg,
    config_of,
    emit,
    finite_floats,
    named_value,
    names,
    operating_point_spec,
    subcommand,
)


def add_parser(commands) -> None:
    parser = subcommand(
        commands,
        "sweep",
        "sweep exit policies over one evaluation artefact (no model, no forward pass)",
        "  fastexit-bench sweep exits/validation.npz --policies entropy,speed,patience,max_prob --out sweep.csv\n"
        "  fastexit-bench sweep dev.npz --test test.npz --values speed=0.1,0.5,0.8 --max-drop 0,1 --out sweep.csv\n"
        "  fastexit-bench sweep dev.npz --policies entropy,my_pkg.policies:Margin --grid entropy=0.1,0.3 --out s.csv\n"
        "Writes OUT (CSV: every policy x value on dev), OUT.scores.csv (gain vs static in points, per policy),\n"
        "OUT.selection.csv (operating points: full depth, fixed --values, dev-chosen values for --max-drop and\n"
        "--min-speedup; their test_* columns are measured on --test, or on dev without it) and OUT.json (the\n"
        "sweep record with provenance). static and oracle are always added as references.\n",
        run_sweep,
    )
    parser.add_argument("artifact", type=Path, help="dev-split artefact from `fastexit-bench evaluate`")
    parser.add_argument(
        "--policies",
        type=names,
        help="built-in names or package.module:Class, comma-separated "
        f"(None: those of {','.join(DEFAULT_POLICIES)} that apply to the artefact)",
    )
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="POLICY=V1,V2",
        type=named_value(finite_floats, "POLICY=V1,V2,... such as speed=0.1,0.5,0.9"),
        help="values to sweep for one policy instead of its default grid (repeatable)",
    )
    parser.add_argument("--test", type=Path, help="held-out artefact to measure the operating points on")
    add_operating_point_args(parser)
    parser.add_argument(
        "--out", type=Path, required=True, help="CSV to write (the other files are named after it)"
    )
    add_overwrite_arg(parser)


def run_sweep(args: argparse.Namespace) -> None:
    from fastexit_bench.analysis.sweep_artifact import sweep_artifact
    from fastexit_bench.io import check_output_file, exclusive_use

    files = SweepFiles(args.out)
    for path in files.all():
        check_output_file(
            path, inputs=[args.artifact, *([args.test] if args.test else [])], overwrite=args.overwrite
        )
    with exclusive_use(files.table, "`fastexit-bench sweep`"):
        result = sweep_artifact(
            args.artifact,
            args.test,
            args.policies,
            dict(args.grid),
            operating_point_spec(args),
            config_of(args),
            log=emit,
        )
        result.save(files)
    emit(result.scores.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    emit("wrote " + ", ".join(str(p) for p in files.all()) + f" ({len(result.table)} rows)")
