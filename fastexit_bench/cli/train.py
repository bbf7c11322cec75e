"""``fastexit-bench train``: fine-tune one (dataset, backbone, recipe) and save the model."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastexit_bench.cli.common import (
    add_data_args,
    add_execution_args,
    add_location_args,
    add_overwrite_arg,
    config_of,
    data_config,
    emit,
    execution_config,
    fraction,
    from_args,
    locations,
    nonnegative_float,
    positive_float,
    positive_int,
    subcommand,
)
from fastexit_bench.errors import FastExitError
from fastexit_bench.pooling import DEFAULT_POOLING, POOLING_CHOICES
from fastexit_bench.training.config import (
    ADAMW_IMPLEMENTATIONS,
    FROZEN_MODES,
    KEEPS,
    VOCABULARIES,
    StageSettings,
    TrainConfig,
)

STAGE_KEYS = {"lr": float, "epochs": int, "keep": str, "schedule_epochs": int}


def stage_settings(text: str) -> tuple[str, StageSettings]:
    """``STAGE:KEY=VALUE,...`` (keys of :class:`StageSettings`) as an argparse type."""
    name, _, pairs = text.partition(":")
    try:
        values = {}
        for pair in pairs.split(","):
            key, sep, value = pair.partition("=")
            if not (name and sep and key in STAGE_KEYS):
                raise ValueError(pair)
            values[key] = STAGE_KEYS[key](value)
        settings = StageSettings(**values)
    except (ValueError, FastExitError):
        raise argparse.ArgumentTypeError(
            f"expected STAGE:KEY=VALUE,... with keys {', '.join(STAGE_KEYS)} (keep: best|last), got {text!r}"
        ) from None
    if any(v is not None and not v > 0 for v in (settings.lr, settings.epochs, settings.schedule_epochs)):
        raise argparse.ArgumentTypeError(f"{text!r}: lr, epochs and schedule_epochs must be positive")
    return name, settings


def add_parser(commands) -> None:
    defaults = TrainConfig()
    parser = subcommand(
        commands,
        "train",
        "fine-tune an early-exit model with a recipe (defaults: the papers' AdamW settings)",
        "  fastexit-bench train --dataset sst2 --backbone minilm-l6 --recipe deebert \\\n"
        "      --mirror ../shared/data --max-train 2000 --out results/models/sst2/minilm-l6/deebert-s0\n"
        "  fastexit-bench train --dataset chnsenticorp --backbone me5-small --recipe fastbert --epochs 2 --out m/\n"
        "  fastexit-bench train --dataset sst2 --backbone minilm-l6 --recipe truncated-3 --out m3/\n"
        "recipes: baseline, truncated-K, distilled-K, deebert, fastbert, pabee, berxit.\n"
        "A killed run started again with the same --out resumes from its last checkpoint.\n",
        run_train,
    )
    parser.add_argument("--dataset", required=True, help="dataset name (`fastexit-bench data ls`)")
    parser.add_argument("--backbone", required=True, help="backbone name, local folder or hub id")
    parser.add_argument("--recipe", required=True, help="training recipe")
    parser.add_argument(
        "--pooling",
        choices=POOLING_CHOICES,
        default=DEFAULT_POOLING,
        help="how the exit heads read a layer: [CLS], the mean of its tokens, or auto: the way the "
        "backbone was pretrained (mean for minilm-l6 and me5-small, [CLS] for hub BERT)",
    )
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    add_overwrite_arg(parser)
    add_location_args(parser)
    add_execution_args(parser)
    add_data_args(parser)
    parser.add_argument("--epochs", type=positive_int, default=defaults.epochs, help="epochs per stage")
    parser.add_argument("--lr", type=positive_float, default=defaults.lr, help="AdamW learning rate")
    parser.add_argument(
        "--batch-size", type=positive_int, default=defaults.batch_size, help="training batch size"
    )
    parser.add_argument(
        "--stage",
        action="append",
        default=list(defaults.stages),
        metavar="STAGE:KEY=V,...",
        type=stage_settings,
        dest="stages",
        help="settings of one named stage: lr, epochs, keep (best|last), schedule_epochs; e.g. "
        "offramps:lr=1e-3 or self-distillation:epochs=5,keep=last (repeatable)",
    )
    parser.add_argument(
        "--warmup", type=fraction, default=defaults.warmup, help="fraction of steps with linear warmup"
    )
    parser.add_argument(
        "--weight-decay", type=nonnegative_float, default=defaults.weight_decay, help="AdamW weight decay"
    )
    parser.add_argument(
        "--keep",
        choices=KEEPS,
        default=defaults.keep,
        help="the epoch each stage ends with: the best on dev, or the last",
    )
    parser.add_argument(
        "--frozen",
        choices=FROZEN_MODES,
        default=defaults.frozen,
        help="mode of the parts a stage does not train: eval (no dropout; cached features) or "
        "train (dropout on, as the papers' code)",
    )
    parser.add_argument(
        "--vocabulary",
        choices=VOCABULARIES,
        default=defaults.vocabulary,
        help="train only the word-embedding rows of the train and dev data's token ids (the same "
        "model to float rounding, faster), or the whole table",
    )
    parser.add_argument(
        "--adamw",
        choices=list(ADAMW_IMPLEMENTATIONS),
        default=defaults.adamw,
        help="torch's AdamW implementation (fused: one kernel; for-loop: torch's choice on a CPU)",
    )
    parser.add_argument(
        "--max-steps",
        type=positive_int,
        default=defaults.max_steps,
        help="cap on optimizer steps per stage (smoke runs)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=defaults.checkpoint_every,
        help="also checkpoint every N steps inside an epoch",
    )
    parser.add_argument(
        "--no-feature-cache",
        action="store_true",
        help="run the frozen backbone every epoch instead of caching per-layer pooled features",
    )
    parser.add_argument(
        "--finetuned-from",
        type=Path,
        metavar="BASELINE",
        help="a trained baseline whose fine-tune is this recipe's first stage (deebert, distilled-K) "
        "under the same data, seed and settings: training starts after that stage",
    )
    parser.add_argument(
        "--group-by-length",
        action=argparse.BooleanOptionalAction,
        default=defaults.group_by_length,
        help="batches of similar length (less padding), or random batches as the papers' code draws them",
    )


def run_train(args: argparse.Namespace) -> None:
    from fastexit_bench.training.run import TrainingRun, train

    config = from_args(
        TrainConfig, args, cache_features=not args.no_feature_cache, execution=execution_config(args)
    )
    record = train(
        TrainingRun(args.dataset, args.backbone, args.recipe, args.pooling, args.finetuned_from),
        data_config(args),
        config,
        args.out,
        where=locations(args),
        provenance_config=config_of(args),
        overwrite=args.overwrite,
        report=emit,
    )
    per_layer = " ".join(f"{m:.4f}" for m in record.dev_metric.per_layer)
    emit(f"dev {record.dev_metric.name} per layer: {per_layer}")
    emit(f"wrote {args.out}")
