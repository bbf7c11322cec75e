"""``fastexit-bench sweep``: every policy x parameter on one evaluation artefact, operating points and scores."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench.analysis.policies import DEFAULT_POLICIES, REFERENCE_POLICIES
from fastexit_bench.analysis.sweep import SweepFiles
from fastexit_bench.cli.common import (
    add_operating_point_args,
    add_overwrite_arg,
    config_of,
    emit,
    finite_floats,
    named_value,
    names,
    subcommand,
)


def add_parser(commands) -> None:
    parser = subcommand(
        commands, "sweep", "sweep exit policies over one evaluation artefact (no model, no forward pass)",
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
    parser.add_argument("--policies", type=names, help="built-in names or package.module:Class, comma-separated "
                        f"(None: those of {','.join(DEFAULT_POLICIES)} that apply to the artefact)")
    parser.add_argument("--grid", action="append", default=[], metavar="POLICY=V1,V2",
                        type=named_value(finite_floats, "POLICY=V1,V2,... such as speed=0.1,0.5,0.9"),
                        help="values to sweep for one policy instead of its default grid (repeatable)")
    parser.add_argument("--test", type=Path, help="held-out artefact to measure the operating points on")
    add_operating_point_args(parser)
    parser.add_argument("--out", type=Path, required=True, help="CSV to write (the other files are named after it)")
    add_overwrite_arg(parser)


def run_sweep(args: argparse.Namespace) -> None:
    from fastexit_bench.io import check_output_file, exclusive_use

    files = SweepFiles(args.out)
    for path in files.all():
        check_output_file(path, inputs=[args.artifact, *([args.test] if args.test else [])], overwrite=args.overwrite)
    with exclusive_use(files.table, "`fastexit-bench sweep`"):
        _sweep(args, files)


def _sweep(args: argparse.Namespace, files: SweepFiles) -> None:
    from fastexit_bench import provenance
    from fastexit_bench.analysis.artifact import ExitArtifact, check_pair
    from fastexit_bench.analysis.degenerate import check_model
    from fastexit_bench.analysis.operating_points import choose, measure
    from fastexit_bench.analysis.policies import policy_errors, resolve_policy
    from fastexit_bench.analysis.sweep import SweepRecord, SweepResult, scores, sweep
    from fastexit_bench.analysis.uncertainty import bootstrap_weights
    from fastexit_bench.cli.common import operating_point_spec
    from fastexit_bench.errors import PolicyError
    from fastexit_bench.io import sha256_file

    dev = ExitArtifact.load(args.artifact)
    outputs = dev.predictions
    requested = args.policies or list(DEFAULT_POLICIES)
    policies = {}
    for name in [*requested, *(r for r in REFERENCE_POLICIES if r not in requested)]:
        policy = resolve_policy(name)
        try:
            with policy_errors(policy):
                policy.fit(outputs)  # on dev: the reported split is only measured
                policy.sweep_exit_layers(outputs, policy.grid(outputs)[:1])
        except PolicyError as exc:
            if args.policies:  # asked for by name: its failure is the user's error
                raise
            emit(f"skipping {policy.name}: {exc}")
            continue
        policies[policy.name] = policy
    grids = dict(args.grid)
    spec = operating_point_spec(args)
    unknown = (set(grids) | set(spec.values)) - set(policies)
    if unknown:
        raise PolicyError(f"--grid/--values name {sorted(unknown)}, which are not among the swept policies "
                          f"{list(policies)}")
    table = sweep(dev, list(policies.values()), grids)
    metric = dev.metadata.headline_metric
    reported = ExitArtifact.load(args.test) if args.test is not None else dev
    if args.test is not None:
        check_pair(dev, reported, args.artifact, args.test)
    check = check_model(outputs, metric, bootstrap_weights(len(outputs.labels)))
    if check.degenerate:
        emit(f"warning: {args.artifact}: {check.describe()}")
    selection = measure(reported, choose(table, metric, spec), policies).assign(degenerate=check.degenerate)
    inputs = {str(p): sha256_file(p) for p in (args.artifact, args.test) if p is not None}
    artifact_meta = {k: v for k, v in dev.metadata.to_dict().items() if k != "provenance"}
    record = SweepRecord(artifact=artifact_meta, operating_points={"values": dict(spec.values),
                         "max_drop": list(spec.max_drop), "min_speedup": list(spec.min_speedup)},
                         reported_split=reported.metadata.split, flops_source=str(table.flops_source.iloc[0]),
                         rows=len(table), model_check=check.to_dict(), provenance=provenance.collect(config=config_of(args), inputs=inputs))
    ranking = scores(table, metric)
    SweepResult(table, ranking, selection, record).save(files)
    emit(ranking.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    emit("wrote " + ", ".join(str(p) for p in files.all()) + f" ({len(table)} rows)")
