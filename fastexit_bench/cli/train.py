"""``fastexit-bench train``: fine-tune one (dataset, backbone, recipe) and save the model."""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict
from pathlib import Path

from fastexit_bench.cli.common import (
    add_data_args,
    add_execution_args,
    add_location_args,
    add_overwrite_arg,
    config_of,
    emit,
    execution_config,
    fraction,
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

log = logging.getLogger(__name__)

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
        commands, "train", "fine-tune an early-exit model with a recipe (defaults: the papers' AdamW settings)",
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
    parser.add_argument("--pooling", choices=POOLING_CHOICES, default=DEFAULT_POOLING,
                        help="how the exit heads read a layer: [CLS], the mean of its tokens, or auto: the way the "
                             "backbone was pretrained (mean for minilm-l6 and me5-small, [CLS] for hub BERT)")
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    add_overwrite_arg(parser)
    add_location_args(parser)
    add_execution_args(parser)
    add_data_args(parser)
    parser.add_argument("--epochs", type=positive_int, default=defaults.epochs, help="epochs per stage")
    parser.add_argument("--lr", type=positive_float, default=defaults.lr, help="AdamW learning rate")
    parser.add_argument("--batch-size", type=positive_int, default=defaults.batch_size, help="training batch size")
    parser.add_argument("--stage", action="append", default=list(defaults.stages), metavar="STAGE:KEY=V,...",
                        type=stage_settings, dest="stages",
                        help="settings of one named stage: lr, epochs, keep (best|last), schedule_epochs; e.g. "
                             "offramps:lr=1e-3 or self-distillation:epochs=5,keep=last (repeatable)")
    parser.add_argument("--warmup", type=fraction, default=defaults.warmup, help="fraction of steps with linear warmup")
    parser.add_argument("--weight-decay", type=nonnegative_float, default=defaults.weight_decay, help="AdamW weight decay")
    parser.add_argument("--keep", choices=KEEPS, default=defaults.keep,
                        help="the epoch each stage ends with: the best on dev, or the last")
    parser.add_argument("--frozen", choices=FROZEN_MODES, default=defaults.frozen,
                        help="mode of the parts a stage does not train: eval (no dropout; cached features) or "
                             "train (dropout on, as the papers' code)")
    parser.add_argument("--vocabulary", choices=VOCABULARIES, default=defaults.vocabulary,
                        help="train only the word-embedding rows of the train and dev data's token ids (the same "
                             "model to float rounding, faster), or the whole table")
    parser.add_argument("--adamw", choices=list(ADAMW_IMPLEMENTATIONS), default=defaults.adamw,
                        help="torch's AdamW implementation (fused: one kernel; for-loop: torch's choice on a CPU)")
    parser.add_argument("--max-steps", type=positive_int, default=defaults.max_steps,
                        help="cap on optimizer steps per stage (smoke runs)")
    parser.add_argument("--checkpoint-every", type=positive_int, default=defaults.checkpoint_every,
                        help="also checkpoint every N steps inside an epoch")
    parser.add_argument("--no-feature-cache", action="store_true",
                        help="run the frozen backbone every epoch instead of caching per-layer pooled features")
    parser.add_argument("--finetuned-from", type=Path, metavar="BASELINE",
                        help="a trained baseline whose fine-tune is this recipe's first stage (deebert, distilled-K) "
                             "under the same data, seed and settings: training starts after that stage")
    parser.add_argument("--no-length-grouping", action="store_true",
                        help="draw random batches instead of batches of similar length")


def run_train(args: argparse.Namespace) -> None:
    from fastexit_bench.io import check_output_folder, exclusive_use
    from fastexit_bench.models.saved import INFO

    check_output_folder(args.out, overwrite=args.overwrite)
    if (args.out / INFO).is_file() and not args.overwrite:
        raise FastExitError(f"{args.out} already holds a trained model ({INFO}); pass --overwrite to train it "
                            "again, or choose another --out")
    with exclusive_use(args.out, "`fastexit-bench train`"):
        _train(args)


def _train(args: argparse.Namespace) -> None:
    from fastexit_bench import provenance
    from fastexit_bench.data.hygiene import check_splits, warnings
    from fastexit_bench.data.spec import DATASETS
    from fastexit_bench.data.tokenized import load_tokenized
    from fastexit_bench.device import resolve_device
    from fastexit_bench.execution import resolve
    from fastexit_bench.models.saved import TrainingRecord, build_model, pooling_for, save_trained
    from fastexit_bench.runtime.batches import TokenBatches
    from fastexit_bench.training.recipes import get_recipe
    from fastexit_bench.training.shared import first_stage_inputs, start_from_finetuned
    from fastexit_bench.training.trainer import DevSet, StageLog, Trainer

    spec = DATASETS.get(args.dataset)
    recipe = get_recipe(args.recipe)
    stage_names = [stage.name for stage in recipe.stages]
    for name, _ in args.stages:
        if name not in stage_names:
            raise FastExitError(f"--stage {name}: recipe {recipe.name!r} has stages {stage_names}")
    device = resolve_device(args.device)
    pooling = pooling_for(args.backbone, recipe.head, args.pooling, args.resources)
    start = recipe.start_spec(args.backbone, spec.num_outputs, pooling)
    model, tokenizer, resolved = build_model(start, args.resources, seed=args.seed)
    if args.max_length > model.max_tokens:
        raise FastExitError(f"--max-length {args.max_length} is longer than {args.backbone}'s {model.max_tokens} "
                            f"positions; use at most {model.max_tokens}")
    model.to(device)
    data = {}
    for split, limit in ((spec.train_split, args.max_train), (spec.selection_split, args.max_eval)):
        data[split] = load_tokenized(spec, split, tokenizer, mirror=args.mirror, max_examples=limit, seed=args.seed,
                                     max_length=args.max_length, resources=args.resources)
    (train_loaded, train_rows), (dev_loaded, dev_rows) = data.values()
    hygiene = check_splits(train_loaded, [dev_loaded])
    for line in warnings(hygiene, spec.train_split, spec.task):
        log.warning(line)
    config = TrainConfig(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, warmup=args.warmup,
                         weight_decay=args.weight_decay, max_steps=args.max_steps, seed=args.seed,
                         checkpoint_every=args.checkpoint_every, cache_features=not args.no_feature_cache,
                         stages=tuple(args.stages), keep=args.keep, frozen=args.frozen,
                         group_by_length=not args.no_length_grouping, execution=execution_config(args),
                         vocabulary=args.vocabulary, adamw=args.adamw)
    dev = DevSet(TokenBatches(dev_rows, tokenizer, device), spec.task, spec.metrics[0])
    train = TokenBatches(train_rows, tokenizer, device)
    first_stage = first_stage_inputs(recipe, start, resolved.location, spec.name, args.seed, args.max_length,
                                     {"train": train.content_hash(), "dev": dev.source.content_hash()}, config,
                                     resolve(config.execution, device).to_dict())
    finished, shared = [], {}
    if args.finetuned_from:
        finished, shared = start_from_finetuned(args.finetuned_from, model, recipe, first_stage, args.resources)
    trainer = Trainer(model, recipe, train, dev, spec.task, config, checkpoint=args.out / "train.ckpt",
                      finished=[StageLog.from_dict(log) for log in finished])
    emit(f"training {recipe.name} on {spec.name} ({len(train_rows)} train / {len(dev_rows)} dev rows) "
         f"with {resolved.requested} ({model.num_layers} layers, {pooling} pooling) on {device}, "
         f"{trainer.execution.precision}, "
         f"{trainer.execution.attention} attention")
    logs = trainer.run()
    final = logs[-1].epochs[logs[-1].best_epoch - 1].dev_metric
    save_trained(args.out, trainer.model.cpu(), TrainingRecord(  # a distilled recipe's student
        model=recipe.model_spec(args.backbone, spec.num_outputs, pooling), dataset=spec.name, recipe=recipe.name,
        seed=args.seed, max_length=args.max_length,
        backbone=asdict(resolved), train_config=asdict(config),
        data={"train": train_loaded.origin, "dev": {"split": dev_loaded.split, **dev_loaded.origin},
              "hygiene": {split: h.to_dict() for split, h in hygiene.items()}},
        stages=[asdict(log) for log in logs], dev_metric={"name": spec.metrics[0], "per_layer": final},
        provenance=provenance.collect(config=config_of(args)), execution=trainer.execution.to_dict(),
        first_stage=first_stage, shared_stages=shared,
    ))
    (args.out / "train.ckpt").unlink()
    emit(f"dev {spec.metrics[0]} per layer: " + " ".join(f"{m:.4f}" for m in final))
    emit(f"wrote {args.out}")
