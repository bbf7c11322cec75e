"""``fastexit-bench flops``: per-component MACs/FLOPs of an early-exit model, and the paper conventions."""

from __future__ import annotations

import argparse

from fastexit_bench.cli.common import add_resources_arg, emit, positive_int, subcommand
from fastexit_bench.data.config import DataConfig
from fastexit_bench.pooling import DEFAULT_POOLING, POOLING_CHOICES


def add_parser(commands) -> None:
    parser = subcommand(
        commands,
        "flops",
        "fvcore MACs and FLOPs per component at a sequence length, and FastBERT's convention",
        "  fastexit-bench flops --backbone minilm-l6 --head branch --length 128\n"
        "  fastexit-bench flops --backbone bert-base-uncased --head branch    # FastBERT's 21,785,247,744 FLOPs\n",
        run_flops,
    )
    parser.add_argument("--backbone", required=True, help="backbone name, local folder or hub id")
    parser.add_argument("--head", default="highway", help="exit head type (highway, branch)")
    parser.add_argument("--num-outputs", type=positive_int, default=2, help="classes (1 for regression)")
    parser.add_argument("--learned-exit", action="store_true", help="include BERxiT's scorer")
    parser.add_argument(
        "--pooling",
        choices=POOLING_CHOICES,
        default=DEFAULT_POOLING,
        help="how pooling heads read a layer (auto: the backbone's pretraining pooling)",
    )
    parser.add_argument(
        "--length", type=positive_int, default=DataConfig.max_length, help="tokens per example"
    )
    add_resources_arg(parser)


def run_flops(args: argparse.Namespace) -> None:
    import numpy as np

    from fastexit_bench.models.backbones import check_length
    from fastexit_bench.models.saved import ModelSpec, build_model, pooling_for
    from fastexit_bench.models.tracing import fastbert_convention, measure_fvcore

    pooling = pooling_for(args.backbone, args.head, args.pooling, args.resources)
    model, _, resolved = build_model(
        ModelSpec(
            args.backbone, args.head, args.num_outputs, learned_exit=args.learned_exit, pooling=pooling
        ),
        args.resources,
    )
    check_length(args.length, model.max_tokens, args.backbone, "--length")
    flops, n = measure_fvcore(model), np.array([float(args.length)])
    emit(
        f"{resolved.requested} ({model.num_layers} layers, {args.head} heads, {pooling} pooling) at {args.length} tokens, "
        f"source {flops.source}"
    )
    emit(f"{'component':12} {'MACs':>16} {'FLOPs':>16}  fvcore skipped")
    parts = {"embeddings": flops.embeddings, "layer": flops.layer, "head": flops.head, "scorer": flops.scorer}
    for name, count in parts.items():
        macs = float(count(n)[0])
        emit(
            f"{name:12} {macs:16,.0f} {2 * macs:16,.0f}  {', '.join(flops.skipped_ops.get(name, [])) or '-'}"
        )
    full = float(flops.full_depth(model.num_layers, n)[0])
    every = float(flops.per_example(np.array([model.num_layers]), n, "logits")[0])
    emit(f"{'full depth':12} {full:16,.0f} {2 * full:16,.0f}  (embeddings + all layers + one head)")
    emit(f"{'all exits':12} {every:16,.0f} {2 * every:16,.0f}  (+ every head on the way)")
    emit(f"FastBERT convention (2 x Linear MACs, padded to 128): {fastbert_convention(model):,}")
