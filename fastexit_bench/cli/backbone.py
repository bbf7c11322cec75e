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
    import torch

    from fastexit_bench import provenance
    from fastexit_bench.io import check_output_file, write_json
    from fastexit_bench.models.backbones import load_backbone

    if args.out:
        check_output_file(args.out, overwrite=args.overwrite, suffix=".json")
    model, tokenizer, resolved = load_backbone(args.name, args.resources)
    emit(f"{args.name}: {resolved.source}\n  location {resolved.location}")
    config = model.config
    emit(
        f"  {config.model_type}, {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
        f"{config.num_attention_heads} heads, vocab {config.vocab_size}, pooler {hasattr(model, 'pooler') and model.pooler is not None}"
    )
    probes = []
    for text in args.text or PROBES:
        encoded = tokenizer(text, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**encoded, output_hidden_states=True).hidden_states
        tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
        probes.append(
            {
                "text": text,
                "tokens": tokens,
                "hidden_states": len(hidden),
                "last_hidden_norm_mean": float(hidden[-1].norm(dim=-1).mean()),
            }
        )
        emit(
            f"  {text!r}: {len(tokens)} tokens -> {len(hidden)} hidden states of shape {tuple(hidden[-1].shape)}"
        )
    if args.out:
        write_json(
            args.out,
            {
                "provenance": provenance.collect(config={"name": args.name}),
                "backbone": {
                    "requested": resolved.requested,
                    "location": resolved.location,
                    "source": resolved.source,
                    "layers": config.num_hidden_layers,
                    "hidden_size": config.hidden_size,
                },
                "probes": probes,
            },
        )
