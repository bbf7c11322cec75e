"""Training throughput at each precision and attention implementation, with and without length-grouped
batches, of the suite's trainer against a plain ``AutoModelForSequenceClassification`` loop, plus
full-depth inference latency at batch 1 and 32.

Both loops train the whole encoder and a classifier with AdamW on the same batches (same examples, same
order, real token lengths, padding per batch) under the same autocast. Throughput is examples per second
over ``--steps`` timed steps: a run of ``1 + steps`` steps minus a run of 1 step, so model loading and the
first step's warm-up are left out. Each configuration is measured in ``--rounds`` rounds, suite and plain
loop back to back in each, and the medians over rounds are reported (the ratio is the median of the
per-round ratios), so a drift of the shared machine hits both loops alike. On a CPU whose oneDNN has no native bf16 (no avx512_bf16 / AMX), bf16 is
emulated and tens of times slower: it is timed over one step of one configuration (the first attention,
random batches) and marked ``emulated``.
Goals (issue 14, on a CPU with native bf16): bf16 >= 2.2x fp32 for the suite's trainer; suite >= 0.95x
the plain loop at equal precision.

    python benchmarks/train_throughput.py --mirror ../shared/data --out results/benchmarks/train_throughput_cpu.json
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from gpu.kit import CASES, TRAIN_EXAMPLES, TRAIN_MAX_LENGTH, bundled_rows
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from fastexit_bench import provenance
from fastexit_bench.data.config import DataConfig
from fastexit_bench.data.spec import DATASETS
from fastexit_bench.data.tokenized import load_tokenized
from fastexit_bench.device import resolve_device
from fastexit_bench.execution import (
    Execution,
    ExecutionConfig,
    autocast,
    cpu_supports_bf16,
    resolve_attention,
    running,
)
from fastexit_bench.io import write_json
from fastexit_bench.locations import Locations
from fastexit_bench.models.backbones import resolve_backbone
from fastexit_bench.models.saved import build_model, pooling_for
from fastexit_bench.runtime.batches import TokenBatches
from fastexit_bench.runtime.latency import set_threads, time_call
from fastexit_bench.training.config import TrainConfig
from fastexit_bench.training.recipes import get_recipe
from fastexit_bench.training.trainer import Trainer, epoch_order


def batches_of(data: TokenBatches, config: TrainConfig, steps: int) -> list:
    """The trainer's first-epoch batches (stage 0), so the plain loop sees the same examples in the same order."""
    order = epoch_order(data.lengths(), len(data), config, stage=0, epoch=0)
    return [data.batch(indices) for indices in order.split(config.batch_size)[:steps]]


def suite_seconds(backbone: str, spec, data: TokenBatches, config: TrainConfig, device, steps: int) -> float:
    """Seconds of ``steps`` optimizer steps of the suite's trainer (baseline recipe: encoder + final head)."""
    recipe = get_recipe("baseline")
    model, _, _ = build_model(
        recipe.model_spec(backbone, spec.num_outputs, pooling_for(backbone, recipe.head))
    )
    model.to(device)
    started = time.perf_counter()
    Trainer(model, recipe, data, None, spec.task, replace(config, max_steps=steps)).run()
    return time.perf_counter() - started


def plain_seconds(
    location: str, spec, data: TokenBatches, config: TrainConfig, execution: Execution, device, steps: int
) -> float:
    """Seconds of ``steps`` steps of a plain fine-tuning loop on the same batches."""
    model = (
        AutoModelForSequenceClassification.from_pretrained(
            location, num_labels=spec.num_outputs, attn_implementation=execution.attention
        )
        .to(device)
        .train()
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(config.warmup * steps), steps)
    started = time.perf_counter()
    for batch in batches_of(data, config, steps):
        with autocast(execution.precision, device):
            loss = model(**batch.inputs, labels=batch.labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def examples_per_second(seconds_of: Callable[[int], float], steps: int, batch_size: int) -> float:
    """Examples per second over ``steps`` timed steps: a run of (1 + steps) steps minus a run of 1 step."""
    return steps * batch_size / (seconds_of(1 + steps) - seconds_of(1))


def inference_ms(
    backbone: str, spec, data: TokenBatches, execution: Execution, batch_size: int, examples: int, device
) -> float:
    """Median milliseconds per example of a full-depth forward pass (every exit), batches sorted by length."""
    model, _, _ = build_model(
        get_recipe("baseline").model_spec(backbone, spec.num_outputs, pooling_for(backbone, "highway"))
    )
    model.to(device).eval()
    order = np.argsort(data.lengths()[:examples], kind="stable")
    samples = []
    with torch.inference_mode(), running(model.config, execution, device):
        batches = [
            data.batch(torch.from_numpy(order[i : i + batch_size])) for i in range(0, len(order), batch_size)
        ]
        for position, batch in enumerate(batches):
            timing = time_call(
                lambda b=batch: model.forward_all(**b.inputs),
                device,
                warmup=1 if position == 0 else 0,
                repeats=1,
            )
            samples.append(1e3 * timing.median_s / batch.inputs["input_ids"].shape[0])
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mirror", help="data mirror holding SST-2 and Book review (../shared/data)")
    parser.add_argument("--cases", default=CASES, help="BACKBONE:DATASET,... (a backbone may be a folder)")
    parser.add_argument("--tokenized", type=Path, help="pre-tokenized rows written by benchmarks/gpu/kit.py")
    parser.add_argument(
        "--examples", type=int, default=TRAIN_EXAMPLES, help="training examples loaded per case"
    )
    parser.add_argument(
        "--weights", default="pretrained", help="what the backbones' weights are, for the record"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per configuration")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per configuration (medians reported)")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--attentions", default="eager,sdpa")
    parser.add_argument("--inference-examples", type=int, default=64)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    run_provenance = provenance.collect(
        config={k: str(v) for k, v in vars(args).items()}
    )  # as the run starts
    device, threads = resolve_device(args.device), set_threads(args.threads)
    native_bf16 = device.type == "cuda" or cpu_supports_bf16()
    rows, inference = [], []
    for case in args.cases.split(","):
        backbone, dataset = case.split(":")
        spec = DATASETS.get(dataset)
        location = resolve_backbone(backbone).location
        tokenizer = AutoTokenizer.from_pretrained(location)
        rows_tokenized = (
            bundled_rows(args.tokenized, backbone, dataset, spec.train_split)
            if args.tokenized
            else load_tokenized(
                spec,
                spec.train_split,
                tokenizer,
                DataConfig(
                    max_train=args.examples, max_eval=args.examples, max_length=TRAIN_MAX_LENGTH, seed=0
                ),
                Locations(mirror=args.mirror),
            )[1]
        )
        data = TokenBatches(rows_tokenized, tokenizer, device)
        print(f"{backbone} on {dataset}: {len(data)} examples, mean {data.lengths().mean():.1f} tokens")
        for precision in args.precisions.split(","):
            emulated = precision == "bf16" and not native_bf16
            steps = 1 if emulated else args.steps
            attentions = args.attentions.split(",")[:1] if emulated else args.attentions.split(",")
            for attention in attentions:
                execution = Execution(precision, attention)
                for grouped in (False,) if emulated else (False, True):
                    config = TrainConfig(
                        batch_size=args.batch_size,
                        epochs=1,
                        group_by_length=grouped,
                        execution=ExecutionConfig(precision, attention),
                    )
                    rounds = [
                        (
                            examples_per_second(
                                partial(suite_seconds, backbone, spec, data, config, device),
                                steps,
                                args.batch_size,
                            ),
                            examples_per_second(
                                partial(plain_seconds, location, spec, data, config, execution, device),
                                steps,
                                args.batch_size,
                            ),
                        )
                        for _ in range(1 if emulated else args.rounds)
                    ]
                    suite = statistics.median(s for s, _ in rounds)
                    plain = statistics.median(p for _, p in rounds)
                    ratio = statistics.median(s / p for s, p in rounds)
                    rows.append(
                        {
                            "backbone": Path(backbone).name,
                            "dataset": dataset,
                            "precision": precision,
                            "attention": attention,
                            "length_grouped": grouped,
                            "timed_steps": steps,
                            "rounds": len(rounds),
                            "emulated_bf16": emulated,
                            "suite_examples_per_s": suite,
                            "plain_examples_per_s": plain,
                            "suite_over_plain": ratio,
                            "per_round": [{"suite": s, "plain": p} for s, p in rounds],
                        }
                    )
                    print(
                        f"  {precision:4} {attention:5} grouped={grouped!s:5} suite {suite:7.2f}/s  "
                        f"plain {plain:7.2f}/s  suite/plain {ratio:.3f}"
                        + ("  (emulated)" if emulated else "")
                    )
            execution = Execution(precision, resolve_attention("auto", device, precision))
            examples = min(32, args.inference_examples) if emulated else args.inference_examples
            for batch_size in (1, 32):
                ms = inference_ms(backbone, spec, data, execution, batch_size, examples, device)
                inference.append(
                    {
                        "backbone": Path(backbone).name,
                        "dataset": dataset,
                        **execution.to_dict(),
                        "batch_size": batch_size,
                        "ms_per_example_median": ms,
                        "emulated_bf16": emulated,
                    }
                )
                print(f"  inference {precision} batch {batch_size}: {ms:.2f} ms/example")
    summary = []
    for backbone, dataset in {(r["backbone"], r["dataset"]) for r in rows}:
        best = {
            p: max(
                (r for r in rows if (r["backbone"], r["dataset"], r["precision"]) == (backbone, dataset, p)),
                key=lambda r: r["suite_examples_per_s"],
                default=None,
            )
            for p in ("fp32", "bf16")
        }
        if best["fp32"] and best["bf16"]:
            summary.append(
                {
                    "backbone": backbone,
                    "dataset": dataset,
                    "fastest_fp32": best["fp32"],
                    "fastest_bf16": best["bf16"],
                    "bf16_over_fp32": best["bf16"]["suite_examples_per_s"]
                    / best["fp32"]["suite_examples_per_s"],
                }
            )
    for row in summary:
        print(
            f"{row['backbone']}/{row['dataset']}: fastest bf16 / fastest fp32 = {row['bf16_over_fp32']:.3f}"
        )
    if args.out:
        write_json(
            args.out,
            {
                "provenance": run_provenance,
                "device": str(device),
                "threads": threads,
                "native_bf16": native_bf16,
                "weights": args.weights,
                "goals": {
                    "bf16_over_fp32": ">= 2.2 (suite, CPU with native bf16)",
                    "suite_over_plain": ">= 0.95",
                },
                "training": rows,
                "inference": inference,
                "summary": summary,
            },
        )
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
