"""How bf16 changes a trained model's exits and metric, against fp32, on one split.

Runs every exit of each model over the split twice (fp32, then bf16 autocast; each with its ``auto``
attention), then for each policy and value of its grid compares the exit layers (share of examples
exiting at the same layer) and the metric at the exit. Also the largest logit difference and the metric at
every exit. On a CPU without native bf16 the bf16 pass is emulated (slow) but computes the same rounding.

    python benchmarks/precision_agreement.py results/reference/sst2_minilm/models/sst2/deebert/seed0 \\
        results/reference/sst2_minilm/models/sst2/fastbert/seed0 --mirror ../shared/data \\
        --out results/benchmarks/precision_agreement_cpu.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fastexit_bench import provenance
from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.data.config import DataConfig
from fastexit_bench.data.spec import DATASETS
from fastexit_bench.data.tokenized import load_tokenized
from fastexit_bench.device import resolve_device
from fastexit_bench.execution import Execution, resolve_attention, running
from fastexit_bench.io import write_json
from fastexit_bench.locations import Locations
from fastexit_bench.metrics import compute_metrics
from fastexit_bench.models.saved import load_trained
from fastexit_bench.runtime.batches import TokenBatches
from fastexit_bench.runtime.latency import set_threads
from fastexit_bench.runtime.predict import predict

POLICIES = ("entropy", "speed", "max_prob", "patience")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", type=Path, help="model folders from `fastexit-bench train`")
    parser.add_argument("--mirror")
    parser.add_argument("--split", help="default: the dataset's first evaluation split (dev)")
    parser.add_argument("--max-examples", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    run_provenance = provenance.collect(
        config={k: str(v) for k, v in vars(args).items()}
    )  # as the run starts
    device, threads = resolve_device(args.device), set_threads(args.threads)
    results = []
    for folder in args.models:
        model, tokenizer, record = load_trained(folder)
        spec = DATASETS.get(record.dataset)
        split = args.split or spec.eval_splits[0]
        _, rows = load_tokenized(
            spec,
            split,
            tokenizer,
            DataConfig(
                max_train=args.max_examples,
                max_eval=args.max_examples,
                max_length=record.max_length,
                seed=record.seed,
            ),
            Locations(mirror=args.mirror),
        )
        data, metric = TokenBatches(rows, tokenizer, device), spec.metrics[0]
        outputs = {}
        for precision in ("fp32", "bf16"):
            execution = Execution(precision, resolve_attention("auto", device, precision))
            with running(model.config, execution, device):
                outputs[precision] = predict(model.to(device), data, spec.task, 64)
        fp32, bf16 = outputs["fp32"], outputs["bf16"]
        policies = []
        for name in POLICIES:
            policy = resolve_policy(name)
            for value in policy.grid(fp32):
                exits = {p: policy.exit_layers(o, value) for p, o in outputs.items()}
                scores = {
                    p: compute_metrics(
                        (metric,), o.predictions()[exits[p] - 1, np.arange(len(exits[p]))], o.labels
                    )[metric]
                    for p, o in outputs.items()
                }
                policies.append(
                    {
                        "policy": name,
                        "value": float(value),
                        "exit_agreement": float((exits["fp32"] == exits["bf16"]).mean()),
                        "mean_exit_fp32": float(exits["fp32"].mean()),
                        "mean_exit_bf16": float(exits["bf16"].mean()),
                        f"{metric}_fp32": scores["fp32"],
                        f"{metric}_bf16": scores["bf16"],
                        "metric_difference_points": 100 * (scores["bf16"] - scores["fp32"]),
                    }
                )
        layers = {p: [m[metric] for m in o.layer_metrics((metric,))] for p, o in outputs.items()}
        agreement = np.array([row["exit_agreement"] for row in policies])
        difference = np.abs([row["metric_difference_points"] for row in policies])
        results.append(
            {
                "model": str(folder),
                "recipe": record.recipe,
                "dataset": spec.name,
                "split": split,
                "examples": len(data),
                "metric": metric,
                "layer_metric_fp32": layers["fp32"],
                "layer_metric_bf16": layers["bf16"],
                "max_abs_logit_difference": float(np.abs(fp32.logits - bf16.logits).max()),
                "prediction_agreement_per_layer": (fp32.predictions() == bf16.predictions())
                .mean(axis=1)
                .tolist(),
                "exit_agreement_min": float(agreement.min()),
                "exit_agreement_median": float(np.median(agreement)),
                "metric_difference_points_max": float(difference.max()),
                "policies": policies,
            }
        )
        print(
            f"{record.recipe} on {spec.name}/{split} ({len(data)} examples): exit agreement median "
            f"{np.median(agreement):.4f}, min {agreement.min():.4f}; largest |metric change| "
            f"{difference.max():.2f} pt; per-layer {metric} fp32 {np.round(layers['fp32'], 4).tolist()} "
            f"bf16 {np.round(layers['bf16'], 4).tolist()}"
        )
    if args.out:
        write_json(
            args.out,
            {"provenance": run_provenance, "device": str(device), "threads": threads, "models": results},
        )
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
