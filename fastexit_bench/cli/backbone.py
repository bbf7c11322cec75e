"""``fastexit-bench backbone``: list and check the backbone zoo."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench.cli.common import add_overwrite_arg, add_resources_arg, emit, subcommand

PROBES = ("The film is a gripping, beautifully acted story.", "这家酒店的服务非常好，房间也很干净。")


def add_parser(commands) -> None:
    group = commands.add_parser("backbone", help="backbones: ls, show").add_subparsers(
        dest="backbone_command", required=True, metavar="SUBCOMMAND"
    )
    subcommand(
        group,
        "ls",
        "list named backbones and where each loads from",
        "  fastexit-bench backbone ls\n",
        run_ls,
    )
    show = subcommand(
        group,
        "show",
        "load a backbone and run an English and a Chinese sentence through it",
        "  fastexit-bench backbone show me5-small\n"
        "  fastexit-bench backbone show ./my-bert-folder --text 'hello world'\n"
        "  fastexit-bench backbone show minilm-l6 --out results/backbones/minilm-l6.json\n",
        run_show,
    )
    show.add_argument("name", help="backbone name, local folder or hub id")
    show.add_argument(
        "--text", action="append", help="sentence(s) to run (default: one English, one Chinese)"
    )
    add_resources_arg(show)
    show.add_argument("--out", type=Path, help="also write the summary as JSON")
    add_overwrite_arg(show)


def run_ls(args: argparse.Namespace) -> None:
    from fastexit_bench.models.backbones import BACKBONES

    for name in BACKBONES:
        spec = BACKBONES.get(name)
        emit(f"{name:10} hub={spec.hub_id or '-':40} {spec.description}")
        emit(f"{'':10} offline: {spec.source_note}")


def run_show(args: argparse.Namespace) -> None:
    from fastexit_bench import provenance
    from fastexit_bench.io import check_output_file, write_json
    from fastexit_bench.models.backbones import probe_backbone

    if args.out:
        check_output_file(args.out, overwrite=args.overwrite, suffix=".json")
    probed = probe_backbone(args.name, args.text or list(PROBES), args.resources)
    b = probed["backbone"]
    emit(f"{args.name}: {b['source']}\n  location {b['location']}")
    emit(
        f"  {b['model_type']}, {b['layers']} layers, hidden {b['hidden_size']}, {b['heads']} heads, "
        f"vocab {b['vocab_size']}, pooler {b['pooler']}"
    )
    for probe in probed["probes"]:
        emit(
            f"  {probe['text']!r}: {len(probe['tokens'])} tokens -> {probe['hidden_states']} hidden states of "
            f"shape {tuple(probe['shape'])}"
        )
    if args.out:
        write_json(args.out, {"provenance": provenance.collect(config={"name": args.name}), **probed})
