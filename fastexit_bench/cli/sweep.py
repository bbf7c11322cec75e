"""``fastexit-bench sweep``: every policy x parameter on one evaluation artefact, selection and scores."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench.cli.common import config_of, emit, float_list, named_value, parse_floats, subcommand

REFERENCES = ("static", "oracle")
DEFAULT_POLICIES = ("entropy", "speed", "patience", "max_prob", "learned")


def add_parser(commands) -> None:
    parser = subcommand(
        commands, "sweep", "sweep exit policies over one evaluation artefact (no model, no forward pass)",
        "  fastexit-bench sweep exits/validation.npz --policies entropy,speed,patience,max_prob --out sweep.csv\n"
        "  fastexit-bench sweep dev.npz --test test.npz --max-drop 0.5,2,4 --min-speedup 2 --out sweep.csv\n"
        "  fastexit-bench sweep dev.npz --policies entropy,my_pkg.policies:Margin --grid entropy=0.1,0.3 --out s.csv\n"
        "Writes OUT (CSV), OUT with .parquet, OUT.scores.csv (AUC vs static, one number per policy),\n"
        "OUT.selection.csv (dev-chosen values, reported on --test when given) and OUT.json (provenance).\n"
        "static and oracle are always added as references.\n",
        run_sweep,
    )
    parser.add_argument("artifact", type=Path, help="dev-split artefact from `fastexit-bench evaluate`")
    parser.add_argument("--policies", help="built-in names or package.module:Class, comma-separated "
                        f"(default: those of {','.join(DEFAULT_POLICIES)} that apply to the artefact)")
    parser.add_argument("--grid", action="append", default=[], metavar="POLICY=V1,V2",
                        type=named_value(parse_floats, "POLICY=V1,V2,... such as speed=0.1,0.5,0.9"),
                        help="values to sweep for one policy instead of its default grid (repeatable)")
    parser.add_argument("--test", type=Path, help="held-out artefact to report the dev-chosen values on")
    parser.add_argument("--max-drop", type=float_list, default=[0.5, 2.0, 4.0],
                        help="selection targets: largest metric drop on dev, in points (default 0.5,2,4)")
    parser.add_argument("--min-speedup", type=float_list, default=[2.0],
                        help="selection targets: required speed-up (default 2)")
    parser.add_argument("--out", type=Path, required=True, help="CSV to write")


def run_sweep(args: argparse.Namespace) -> None:
    from fastexit_bench import provenance
    from fastexit_bench.analysis.artifact import ExitArtifact
    from fastexit_bench.io import atomic_path, sha256_file, write_json
    from fastexit_bench.analysis.policies import PolicyError, resolve_policy
    from fastexit_bench.analysis.sweep import Target, apply_selection, layer_outputs, scores, select, sweep

    dev = ExitArtifact.load(args.artifact)
    outputs = layer_outputs(dev)
    requested = [name for name in (args.policies or "").split(",") if name] or list(DEFAULT_POLICIES)
    policies = {}
    for name in [*requested, *(r for r in REFERENCES if r not in requested)]:
        policy = resolve_policy(name)
        try:
            policy.sweep_exit_layers(outputs, policy.grid(outputs)[:1])
        except PolicyError as exc:
            if args.policies:  # asked for by name: its failure is the user's error
                raise
            emit(f"skipping {policy.name}: {exc}")
            continue
        policies[policy.name] = policy
    grids = dict(args.grid)
    unknown = set(grids) - set(policies)
    if unknown:
        raise PolicyError(f"--grid names {sorted(unknown)}, which are not among the swept policies {list(policies)}")
    table = sweep(dev, list(policies.values()), grids)
    metric = dev.metadata["metrics"][0]
    targets = [Target("max_drop", v) for v in args.max_drop] + [Target("min_speedup", v) for v in args.min_speedup]
    chosen = select(table, metric, targets)
    if args.test is not None:
        chosen = apply_selection(chosen, ExitArtifact.load(args.test), policies)
    ranking = scores(table, metric)
    out = args.out
    for frame, path, writer in ((table, out, "to_csv"), (table, out.with_suffix(".parquet"), "to_parquet"),
                                (ranking, out.with_suffix(".scores.csv"), "to_csv"),
                                (chosen, out.with_suffix(".selection.csv"), "to_csv")):
        with atomic_path(path) as tmp:
            getattr(frame, writer)(tmp, index=False)
    inputs = {str(p): sha256_file(p) for p in (args.artifact, args.test) if p is not None}
    write_json(out.with_suffix(".json"), {
        "provenance": provenance.collect(config=config_of(args), inputs=inputs),
        "artifact": {k: v for k, v in dev.metadata.items() if k != "provenance"},
        "flops_source": table.flops_source.iloc[0], "rows": len(table),
    })
    emit(ranking.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    emit(f"wrote {out} ({len(table)} rows), {out.with_suffix('.parquet')}, .scores.csv, .selection.csv, .json")

