"""Stage-2 cost: one epoch of off-ramp training (DeeBERT) or self-distillation (FastBERT) over the
frozen backbone, relative to one fine-tuning epoch (stage 1) of the same model on the same data.

Goal (issue 3): stage-2 epoch / stage-1 epoch <= 0.35. DeeBERT's highways read only [CLS], so
stage 2 trains on per-layer [CLS] features extracted once (the extraction is reported separately and
amortised over the epochs); FastBERT's branches attend over all tokens, so its stage 2 runs the
frozen backbone forward (no backward) every epoch. Times are medians over epochs in one process.

    python benchmarks/stage2_cost.py --mirror ../shared/data --out results/benchmarks/stage2_cost.json
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from fastexit_bench import provenance
from fastexit_bench.data.config import DataConfig
from fastexit_bench.data.spec import DATASETS
from fastexit_bench.data.tokenized import load_tokenized
from fastexit_bench.io import write_json
from fastexit_bench.locations import Locations
from fastexit_bench.models.saved import build_model, pooling_for
from fastexit_bench.runtime.batches import TokenBatches
from fastexit_bench.training.config import TrainConfig
from fastexit_bench.training.recipes import get_recipe
from fastexit_bench.training.trainer import Trainer

CASES = (("deebert", True), ("deebert", False), ("fastbert", True))


def measure(args: argparse.Namespace, recipe_name: str, cache: bool) -> dict:
    spec, recipe = DATASETS.get(args.dataset), get_recipe(recipe_name)
    torch.manual_seed(args.seed)
    model, tokenizer, _ = build_model(
        recipe.model_spec(args.backbone, spec.num_outputs, pooling_for(args.backbone, recipe.head))
    )
    _, rows = load_tokenized(
        spec,
        spec.train_split,
        tokenizer,
        DataConfig(
            max_train=args.examples, max_eval=args.examples, max_length=args.max_length, seed=args.seed
        ),
        Locations(mirror=args.mirror),
    )
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, cache_features=cache)
    stage1, stage2 = Trainer(model, recipe, TokenBatches(rows, tokenizer), None, spec.task, config).run()
    t1 = statistics.median(e.seconds for e in stage1.epochs)
    t2 = statistics.median(e.seconds for e in stage2.epochs)
    return {
        "recipe": recipe_name,
        "stage2": stage2.stage,
        "cached_features": stage2.cached_features,
        "stage1_epoch_s": t1,
        "stage2_epoch_s": t2,
        "feature_extraction_s": stage2.feature_seconds,
        "ratio": t2 / t1,
        "ratio_amortised": (t2 * args.epochs + stage2.feature_seconds) / (t1 * args.epochs),
        "stage1_epochs_s": [e.seconds for e in stage1.epochs],
        "stage2_epochs_s": [e.seconds for e in stage2.epochs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="sst2")
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--mirror")
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    run_provenance = provenance.collect(
        config={k: str(v) for k, v in vars(args).items()}
    )  # as the run starts
    rows = [measure(args, recipe, cache) for recipe, cache in CASES]
    print(
        f"{args.dataset}, {args.backbone}, {args.examples} examples, {args.epochs} epochs, batch {args.batch_size}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"{'recipe':9} {'stage 2':18} {'cached':>6} {'s1 epoch s':>10} {'s2 epoch s':>10} {'extract s':>9} "
        f"{'s2/s1':>6} {'amortised':>9}"
    )
    for r in rows:
        print(
            f"{r['recipe']:9} {r['stage2']:18} {r['cached_features']!s:>6} {r['stage1_epoch_s']:10.2f} "
            f"{r['stage2_epoch_s']:10.2f} {r['feature_extraction_s']:9.2f} {r['ratio']:6.3f} "
            f"{r['ratio_amortised']:9.3f}"
        )
    if args.out:
        write_json(
            args.out,
            {"provenance": run_provenance, "goal": "stage-2 epoch / stage-1 epoch <= 0.35", "rows": rows},
        )
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
