"""Training cost: where a step's time goes, and examples/s before and after the training-cost settings.

- ``profile``: one training step of the baseline recipe (encoder + final head, bf16 autocast as ``auto`` picks on a
  CPU with native bf16) cut into its parts: collating the batch, forward with the loss, backward, gradient
  clipping, the AdamW step and the check that the weights are finite, timed with a clock read between parts
  (medians over every batch of one epoch, after 2 warm-up steps), plus one dev-scoring pass per example. Each
  configuration is profiled: ``before`` (the whole vocabulary, AdamW's per-tensor loop, a per-tensor
  ``isfinite`` check: the trainer at ``--before``) and ``after`` (today's defaults: trimmed vocabulary, fused
  AdamW, one total-norm check).
- ``throughput``: the suite's ``Trainer`` itself, examples/s over one epoch but its first step (a run of one
  epoch minus a run of 1 step, so loading and the first step are left out), ``before`` running the package as it was at
  ``--before`` (``git archive`` into a temporary folder, imported by a subprocess) and ``after`` this checkout,
  interleaved in ``--rounds`` rounds; medians over rounds, ``after_over_before`` the median of per-round ratios.

Each case trains on ``--examples`` training rows of its dataset (seeded subsample) at their real token lengths
(max length 128), batch 32 for ``minilm-l6`` and 16 for ``me5-small`` (the reference experiments' sizes), in
length-grouped batches; one epoch spans every length, so the rates are the data's, not its longest batches'.

    python benchmarks/train_cost.py --mirror ../shared/data --threads 2 --out results/benchmarks/train_cost_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

BEFORE_COMMIT = "527f37a"
CASES = "minilm-l6:sst2:32,me5-small:book_review:16"  # BACKBONE:DATASET:BATCH
MAX_LENGTH = 128
PARTS = ("data", "forward", "backward", "clip", "optimizer", "weight_check")
CONFIGURATIONS = {  # what each configuration sets; the trainer at BEFORE_COMMIT knows neither key
    "before": {"vocabulary": "full", "adamw": "for-loop", "check": "per-tensor"},
    "after": {"vocabulary": "trimmed", "adamw": "fused", "check": "total-norm"},
}


def case_data(backbone: str, dataset: str, examples: int, mirror: str | None):
    """``(spec, tokenizer, TokenBatches)`` of the case's training rows (works with the package at either commit)."""
    from transformers import AutoTokenizer

    from fastexit_bench.data.config import DataConfig
    from fastexit_bench.data.spec import DATASETS
    from fastexit_bench.data.tokenized import load_tokenized
    from fastexit_bench.locations import Locations
    from fastexit_bench.models.backbones import resolve_backbone
    from fastexit_bench.runtime.batches import TokenBatches

    spec = DATASETS.get(dataset)
    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone(backbone).location)
    _, rows = load_tokenized(
        spec,
        spec.train_split,
        tokenizer,
        DataConfig(max_train=examples, max_eval=examples, max_length=MAX_LENGTH, seed=0),
        Locations(mirror=mirror),
    )
    return spec, tokenizer, TokenBatches(rows, tokenizer)


def baseline_model(backbone: str, spec):
    import torch

    from fastexit_bench.models.saved import build_model, pooling_for
    from fastexit_bench.training.recipes import get_recipe

    torch.manual_seed(0)
    recipe = get_recipe("baseline")
    model, _, _ = build_model(
        recipe.model_spec(backbone, spec.num_outputs, pooling_for(backbone, recipe.head))
    )
    return recipe, model


def trainer_seconds(case: str, examples: int, mirror: str | None, steps: int, settings: dict) -> float:
    """Seconds of ``steps`` optimizer steps of ``Trainer.run`` (no dev set), model loading left out."""
    from fastexit_bench.training.config import TrainConfig
    from fastexit_bench.training.trainer import Trainer

    backbone, dataset, batch = case.split(":")
    spec, _, data = case_data(backbone, dataset, examples, mirror)
    recipe, model = baseline_model(backbone, spec)
    config = TrainConfig(batch_size=int(batch), epochs=1, max_steps=steps, **settings)
    started = time.perf_counter()
    Trainer(model, recipe, data, None, spec.task, config).run()
    return time.perf_counter() - started


def worker(args: argparse.Namespace) -> None:
    """Print the examples/s of one configuration (run in a subprocess, possibly on another commit's package)."""
    import torch

    import fastexit_bench

    torch.set_num_threads(args.threads)
    settings = json.loads(args.settings)
    batch = int(args.case.split(":")[2])
    steps = args.examples // batch  # one epoch of full batches
    seconds = [trainer_seconds(args.case, steps * batch, args.mirror, n, settings) for n in (steps, 1)]
    print(
        json.dumps(
            {
                "examples_per_s": (steps - 1) * batch / (seconds[0] - seconds[1]),
                "package": str(Path(fastexit_bench.__file__).parents[1]),
            }
        )
    )


def measure(code: Path, case: str, settings: dict, args: argparse.Namespace) -> float:
    command = [
        sys.executable,
        __file__,
        "worker",
        "--case",
        case,
        "--settings",
        json.dumps(settings),
        "--examples",
        str(args.examples),
        "--threads",
        str(args.threads),
    ]
    if args.mirror:
        command += ["--mirror", args.mirror]
    env = {**os.environ, "PYTHONPATH": str(code), "TQDM_DISABLE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"worker failed on {case} ({code}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(result["package"]).resolve() != code.resolve():  # the subprocess must run the commit asked for
        raise SystemExit(f"worker imported fastexit_bench from {result['package']}, not {code}")
    return result["examples_per_s"]


def unpacked(commit: str, into: Path) -> Path:
    """The package as it was at ``commit``: ``git archive`` of ``fastexit_bench/`` unpacked under ``into``."""
    archive = into / "before.tar"
    subprocess.run(["git", "archive", "-o", str(archive), commit, "fastexit_bench"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def profile(case: str, name: str, args: argparse.Namespace) -> dict:
    """Milliseconds per part of a training step (medians) and of dev scoring per example, for one configuration."""
    import torch

    from fastexit_bench.execution import ExecutionConfig, resolve, running
    from fastexit_bench.models.vocabulary import data_token_ids, restore_vocabulary, trim_vocabulary
    from fastexit_bench.runtime.predict import predict
    from fastexit_bench.training.config import ADAMW_IMPLEMENTATIONS, TrainConfig
    from fastexit_bench.training.losses import LOSSES
    from fastexit_bench.training.trainer import epoch_order

    settings = CONFIGURATIONS[name]
    backbone, dataset, batch = case.split(":")
    spec, _, data = case_data(backbone, dataset, args.examples, args.mirror)
    _, model = baseline_model(backbone, spec)
    if settings["vocabulary"] == "trimmed":
        trim_vocabulary(
            model.embeddings, data_token_ids([data.token_ids()], model.embeddings.word_embeddings.padding_idx)
        )
    modules = [*model.encoder_modules, model.heads[-1]]
    model.requires_grad_(False)
    params = list({id(p): p for m in modules for p in m.parameters()}.values())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(
        params, lr=2e-5, weight_decay=0.01, **ADAMW_IMPLEMENTATIONS[settings["adamw"]]
    )
    objective = LOSSES.get("final_exit")
    device = torch.device("cpu")
    execution = resolve(ExecutionConfig(), device)
    order = epoch_order(data.lengths(), len(data), TrainConfig(batch_size=int(batch)), 0, 0).split(int(batch))
    times: dict[str, list[float]] = {part: [] for part in PARTS}
    model.train()
    with running(model.config, execution, device):
        for step, indices in enumerate([*order[:2], *order]):  # 2 warm-up steps, then the whole epoch
            clock = [time.perf_counter()]
            batch_ = data.batch(indices)
            clock.append(time.perf_counter())
            loss = objective(data.exits(model, batch_), batch_.labels, spec.task)
            clock.append(time.perf_counter())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clock.append(time.perf_counter())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            clock.append(time.perf_counter())
            optimizer.step()
            clock.append(time.perf_counter())
            if settings["check"] == "per-tensor":
                bool(torch.stack([p.isfinite().all() for p in params]).all())
            else:
                bool(torch.nn.utils.get_total_norm(params).isfinite())
            clock.append(time.perf_counter())
            if step >= 2:
                for part, start, end in zip(PARTS, clock, clock[1:]):
                    times[part].append(1e3 * (end - start))
        model.eval()
        started = time.perf_counter()
        predict(model, data, spec.task, 128)
        scoring = 1e3 * (time.perf_counter() - started) / len(data)
    restore_vocabulary(model.embeddings)
    parts = {part: statistics.median(values) for part, values in times.items()}
    return {
        "case": case,
        "configuration": name,
        **settings,
        "execution": execution.to_dict(),
        "mean_tokens": float(data.lengths().mean()),
        "step_ms": parts,
        "step_ms_total": sum(parts.values()),
        "dev_scoring_ms_per_example": scoring,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("worker")
    run.add_argument("--case", required=True)
    run.add_argument("--settings", required=True)
    for p in (parser, run):
        p.add_argument("--mirror", help="data mirror holding SST-2 and Book review (../shared/data)")
        p.add_argument("--examples", type=int, default=384, help="training rows per case (one epoch)")
        p.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", default=CASES, help="BACKBONE:DATASET:BATCH,...")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved throughput rounds (medians reported)"
    )
    parser.add_argument("--before", default=BEFORE_COMMIT, help="the commit whose trainer is 'before'")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.command == "worker":
        return worker(args)

    import torch

    from fastexit_bench import provenance
    from fastexit_bench.io import write_json

    run_provenance = provenance.collect(config={k: str(v) for k, v in vars(args).items()})
    torch.set_num_threads(args.threads)
    cases = args.cases.split(",")
    profiles = [profile(case, name, args) for case in cases for name in CONFIGURATIONS]
    for row in profiles:
        print(
            f"{row['case']:28} {row['configuration']:6} "
            + "  ".join(f"{part} {ms:7.1f}" for part, ms in row["step_ms"].items())
            + f"  = {row['step_ms_total']:7.1f} ms/step;"
            f" dev scoring {row['dev_scoring_ms_per_example']:.2f} ms/example"
        )
    throughput = []
    with tempfile.TemporaryDirectory() as folder:
        codes = {"before": unpacked(args.before, Path(folder)), "after": Path(__file__).resolve().parents[1]}
        for case in cases:
            rounds = []
            for _ in range(args.rounds):
                rounds.append(
                    {
                        "before": measure(codes["before"], case, {}, args),
                        "after": measure(
                            codes["after"],
                            case,
                            {k: v for k, v in CONFIGURATIONS["after"].items() if k != "check"},
                            args,
                        ),
                    }
                )
            row = {
                "case": case,
                "rounds": rounds,
                "before_examples_per_s": statistics.median(r["before"] for r in rounds),
                "after_examples_per_s": statistics.median(r["after"] for r in rounds),
                "after_over_before": statistics.median(r["after"] / r["before"] for r in rounds),
            }
            throughput.append(row)
            print(
                f"{case:28} before {row['before_examples_per_s']:7.2f}/s  after {row['after_examples_per_s']:7.2f}/s"
                f"  after/before {row['after_over_before']:.2f}"
            )
    if args.out:
        write_json(
            args.out,
            {
                "provenance": run_provenance,
                "threads": args.threads,
                "before_commit": args.before,
                "configurations": CONFIGURATIONS,
                "goals": {"me5-small": ">= 2.0", "minilm-l6": ">= 1.3"},
                "profile": profiles,
                "throughput": throughput,
            },
        )
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
