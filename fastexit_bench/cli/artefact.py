"""``fastexit-bench artefact``: exit outputs to and from the interchange format (``analysis.interchange``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench.cli.common import (
    add_overwrite_arg,
    emit,
    named_value,
    names,
    nonnegative_float,
    nonnegative_int,
    subcommand,
)


def add_parser(commands) -> None:
    group = commands.add_parser(
        "artefact", help="evaluation artefacts: export to / import from the interchange format"
    ).add_subparsers(dest="artefact_command", required=True, metavar="SUBCOMMAND")
    export = subcommand(
        group,
        "export",
        "write an evaluation artefact in the fastexit-exits interchange format (Parquet, or .npz + .json)",
        "  fastexit-bench artefact export exits/sst2.deebert.seed0.validation.npz --out sst2.parquet\n",
        run_export,
    )
    export.add_argument("artifact", type=Path, help="an artefact written by `fastexit-bench evaluate`")
    export.add_argument("--out", type=Path, required=True, help="NAME.parquet, or NAME.npz (and NAME.json)")
    add_overwrite_arg(export)

    imported = subcommand(
        group,
        "import",
        "an evaluation artefact from a fastexit-exits file or a plain [layers, examples, outputs] array",
        "  fastexit-bench artefact import sst2.parquet --out exits/sst2.mine.seed0.validation.npz\n"
        "  fastexit-bench artefact import logits.npy --labels labels.npy --dataset sst2 --split validation \\\n"
        "      --recipe mine --backbone bert-base --macs embeddings=0,layer=7.1e9,head=6e5 \\\n"
        "      --out exits/sst2.mine.seed0.validation.npz\n"
        "The written artefact runs through sweep, report and leaderboard like one from `evaluate`.\n",
        run_import,
    )
    imported.add_argument(
        "source", type=Path, help="a .parquet or .npz (+ .json) interchange file, or a .npy"
    )
    imported.add_argument("--out", type=Path, required=True, help="the artefact to write (.npz)")
    array = imported.add_argument_group("for a plain .npy array of every exit's outputs")
    array.add_argument("--labels", type=Path, help=".npy of the labels, one per example")
    array.add_argument("--dataset", help="dataset name (a registered one chooses the leaderboard's splits)")
    array.add_argument("--split", help="the split the outputs are of")
    array.add_argument("--recipe", default="imported", help="the model's training recipe or name")
    array.add_argument("--backbone", default="unknown", help="the backbone's name")
    array.add_argument("--seed", type=nonnegative_int, default=0, help="the training seed")
    array.add_argument(
        "--task",
        choices=["classification", "regression"],
        default="classification",
        help="what the outputs predict",
    )
    array.add_argument("--metrics", type=names, default=["accuracy"], help="metric keys, headline first")
    array.add_argument(
        "--exit-policy",
        default="entropy",
        help="the policy the model was trained to exit with; 'none' if only its last exit was trained",
    )
    array.add_argument(
        "--macs",
        type=named_value(nonnegative_float, "PART=COUNT such as layer=7.1e9"),
        action="append",
        default=[],
        metavar="PART=COUNT",
        help="cost of one example through embeddings, layer, head and scorer (repeatable)",
    )
    array.add_argument(
        "--flop-convention",
        choices=["macs", "flops"],
        default="macs",
        help="what --macs counts: multiply-adds (fvcore), or FLOPs at two per multiply-add (FastBERT)",
    )
    add_overwrite_arg(imported)


def run_export(args: argparse.Namespace) -> None:
    from fastexit_bench.analysis.artifact import ExitArtifact
    from fastexit_bench.analysis.interchange import export_artifact
    from fastexit_bench.io import check_output_file

    check_output_file(args.out, inputs=[args.artifact], overwrite=args.overwrite)
    written = export_artifact(ExitArtifact.load(args.artifact), args.out)
    emit("wrote " + ", ".join(map(str, written)))


def run_import(args: argparse.Namespace) -> None:
    import numpy as np

    from fastexit_bench.analysis.interchange import PartCosts, from_arrays, read_interchange
    from fastexit_bench.errors import FastExitError
    from fastexit_bench.io import check_output_file

    check_output_file(args.out, inputs=[args.source], overwrite=args.overwrite, suffix=".npz")
    if args.source.suffix != ".npy":
        artifact = read_interchange(args.source)
    else:
        missing = [
            flag
            for flag, value in (
                ("--labels", args.labels),
                ("--dataset", args.dataset),
                ("--split", args.split),
            )
            if value is None
        ]
        parts = dict(args.macs)
        unknown = set(parts) - {"embeddings", "layer", "head", "scorer"}
        if missing or unknown or "layer" not in parts:
            raise FastExitError(
                f"a plain array needs {', '.join(missing) or 'nothing more'} and --macs for layer (and "
                f"optionally embeddings, head, scorer){f'; unknown parts {sorted(unknown)}' if unknown else ''}"
            )
        artifact = from_arrays(
            np.load(args.source, allow_pickle=False),
            np.load(args.labels, allow_pickle=False),
            dataset=args.dataset,
            split=args.split,
            recipe=args.recipe,
            backbone=args.backbone,
            costs=PartCosts(
                parts.get("embeddings", 0.0), parts["layer"], parts.get("head", 0.0), parts.get("scorer", 0.0)
            ),
            convention=args.flop_convention,
            task=args.task,
            metrics=tuple(args.metrics),
            seed=args.seed,
            exit_policy=None if args.exit_policy == "none" else args.exit_policy,
        )
    artifact.save(args.out)
    emit(
        f"wrote {args.out} ({artifact.metadata.dataset}/{artifact.metadata.split}, "
        f"{len(artifact.lengths)} examples, {artifact.predictions.num_layers} exits)"
    )
