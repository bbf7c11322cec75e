"""Latency harness: warmup, repeats, median and p90, with the right clock for the device.

On CUDA each timed call is bracketed by CUDA events after a synchronize; on CPU ``time.perf_counter``
is used and the torch thread count is fixed and recorded. Quote medians and ratios measured in one
run, never a lone absolute time from a shared machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastexit_bench import provenance
from fastexit_bench.analysis.artifact import LayerOutputs
from fastexit_bench.analysis.flops import PolynomialFlops
from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.device import resolve_device
from fastexit_bench.errors import FastExitError
from fastexit_bench.execution import FP32_EAGER, Execution, ExecutionConfig, resolve, running
from fastexit_bench.locations import Locations
from fastexit_bench.models.saved import read_record
from fastexit_bench.runtime.config import LatencyConfig, LatencyRecord, LatencyRow
from fastexit_bench.runtime.trained import open_trained


@dataclass(frozen=True)
class Timing:
    """Seconds per call over ``repeats`` timed calls (after ``warmup`` untimed ones)."""

    median_s: float
    p90_s: float
    repeats: int
    samples_s: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def set_threads(threads: int | None) -> int:
    """Fix torch's intra-op threads (when given) and return the count in use, for the record."""
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def time_call(
    fn: Callable[[], Any], device: torch.device, warmup: int = 3, repeats: int = LatencyConfig.repeats
) -> Timing:
    """Time ``fn()``: CUDA events on a GPU, ``perf_counter`` on the CPU."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            samples.append(start.elapsed_time(end) / 1000.0)
        else:
            start_s = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start_s)
    return Timing(statistics.median(samples), float(np.percentile(samples, 90)), repeats, tuple(samples))


def timed_passes(
    engines: dict[str, Any], batches: list, device: torch.device, repeats: int, recorded: list | None = None
) -> dict[str, dict]:
    """Per-batch median times of every engine, interleaved: for each batch, each round times every engine
    once, so drifts of a shared machine hit all engines alike. Per-example latency median/p90 and
    throughput over the pass. ``recorded``: per batch, the outputs its exits are replayed from."""
    medians: dict[str, list[float]] = {name: [] for name in engines}
    sizes = [batch.inputs["input_ids"].shape[0] for batch in batches]
    for position, batch in enumerate(batches):
        samples: dict[str, list[float]] = {name: [] for name in engines}
        replayed = recorded[position] if recorded is not None else None
        for round_index in range(repeats):
            for name, engine in engines.items():
                timing = time_call(
                    lambda e=engine, b=batch, r=replayed: e.run(**b.inputs, recorded=r),
                    device,
                    warmup=1 if round_index == 0 else 0,
                    repeats=1,
                )
                samples[name].append(timing.median_s)
        for name in engines:
            medians[name].append(float(np.median(samples[name])))
    stats = {}
    for name, values in medians.items():
        per_example = np.array(values) / np.array(sizes)
        total = float(sum(values))
        stats[name] = {
            "total_s": total,
            "per_example_median_ms": 1e3 * float(np.median(per_example)),
            "per_example_p90_ms": 1e3 * float(np.percentile(per_example, 90)),
            "throughput_per_s": sum(sizes) / total,
        }
    return stats


def same_answers(logits: torch.Tensor, outputs: LayerOutputs, exits: np.ndarray) -> bool:
    """Whether the engine's answers (``logits`` at each example's exit) are the predictions ``outputs`` give
    at those exits: the same class, or a regression value equal to 1e-4."""
    expected = outputs.predictions()[exits - 1, np.arange(len(exits))]
    got = logits.float().cpu().numpy()
    if outputs.task == "regression":
        return bool(np.allclose(got[:, 0], expected, atol=1e-4))
    return bool(np.array_equal(got.argmax(-1), expected))


def realized_vs_predicted(
    model,
    source,
    task: str,
    points: Sequence[tuple[str, Any, float]],
    batch_sizes: Sequence[int],
    repeats: int,
    device: torch.device,
    execution: Execution = FP32_EAGER,
    replay: LayerOutputs | None = None,
    runner: Any = None,
) -> list[LatencyRow]:
    """Wall-clock speed-up of the early-exit engine at each operating point (label, policy, value) against
    the same model run to full depth, next to the speed-up its FLOPs predict (fvcore counts, true lengths,
    heads on the way included). Both run the same pre-collated batches (length-bucketed above batch 1), at
    ``execution``'s precision and attention. Refuses to time anything if the engine's exits differ from the
    sweep's on these examples at that precision. With ``replay`` (recorded outputs of every example of
    ``source``), exits are decided on those instead of the model's own heads (see ``runtime.engine``). With
    ``runner`` (the model under another runtime, ``runtime.compiled``) the engines run that, and their exits
    and predictions must equal those of that runner's own full-depth outputs (a compiled bf16 graph's
    numbers are close to eager's, not equal; that fp32 runtimes equal eager is tested)."""
    from fastexit_bench.models.tracing import measure_fvcore

    flops = measure_fvcore(model)  # fp32 tracing, outside the block that holds cast weights
    with running(model.config, execution, device, inference=model.layers):
        return _realized_vs_predicted(
            model, runner or model, source, task, points, batch_sizes, repeats, device, replay, flops
        )


def _realized_vs_predicted(
    model,
    runner,
    source,
    task: str,
    points: Sequence[tuple[str, Any, float]],
    batch_sizes: Sequence[int],
    repeats: int,
    device: torch.device,
    replay: LayerOutputs | None,
    flops: PolynomialFlops,
) -> list[LatencyRow]:
    from fastexit_bench.runtime.batches import evaluation_batches
    from fastexit_bench.runtime.engine import EarlyExitEngine
    from fastexit_bench.runtime.predict import predict

    outputs = replay if replay is not None else predict(runner, source, task)
    lengths = source.lengths()
    baseline = EarlyExitEngine(runner, resolve_policy("static"), model.num_layers, task)
    engines = {label: EarlyExitEngine(runner, policy, value, task) for label, policy, value in points}
    for label, policy, value in points:
        check = engines[label].run_source(source, 32, length_bucketed=True, replay=replay)
        exits = policy.exit_layers(outputs, value)
        if not np.array_equal(check.exit_layers, exits) or (
            replay is None and not same_answers(check.logits, outputs, exits)
        ):
            raise FastExitError(
                f"engine and sweep disagree at {label}; the timing would measure the wrong thing"
            )
    results = []
    for batch_size in batch_sizes:
        indices = evaluation_batches(source, batch_size, by_length=batch_size > 1)
        batches = [source.batch(batch_indices) for batch_indices in indices]
        recorded = [replay.select(i.numpy()) for i in indices] if replay is not None else None
        stats = timed_passes({"full depth": baseline, **engines}, batches, device, repeats, recorded)
        for label, policy, value in points:
            exits = policy.exit_layers(outputs, value)
            predicted = flops.speedup(exits, lengths, policy.reads, model.num_layers)
            realized = stats["full depth"]["total_s"] / stats[label]["total_s"]
            results.append(
                LatencyRow(
                    setting=label,
                    policy=policy.name,
                    value=value,
                    batch_size=batch_size,
                    mean_exit_layer=float(exits.mean()),
                    predicted_speedup=predicted,
                    realized_speedup=realized,
                    realized_over_predicted=realized / predicted,
                    full_depth=stats["full depth"],
                    early_exit=stats[label],
                )
            )
    return results


def measure_latency(
    folder: Path,
    points: Sequence[tuple[str, str, float]],
    split: str | None,
    settings: LatencyConfig,
    *,
    threads: int | None,
    execution: ExecutionConfig,
    where: Locations,
    config: dict[str, Any],
) -> LatencyRecord:
    """Time the model in ``folder`` at each operating point ``(setting, policy name, value)`` on a seeded
    ``settings.examples`` of ``split`` (:func:`realized_vs_predicted`); ``config`` is recorded as the run's
    provenance. Without points (a model that always runs to full depth) nothing is loaded or timed."""
    threads = set_threads(threads)
    record = read_record(folder)
    device = resolve_device(where.device)
    timing = LatencyRecord(
        dataset=record.dataset,
        recipe=record.recipe,
        seed=record.seed,
        threads=threads,
        device=str(device),
        execution=resolve(execution, device),
        provenance=provenance.collect(config=config),
    )
    if not points:
        return timing
    trained = open_trained(folder, split, examples=settings.examples, execution=execution, where=where)
    timing.rows = realized_vs_predicted(
        trained.model,
        trained.source,
        trained.dataset.task,
        [(setting, resolve_policy(policy), value) for setting, policy, value in points],
        settings.batch_sizes,
        settings.repeats,
        trained.device,
        trained.execution,
        runner=trained.runner,
    )
    timing.split, timing.examples, timing.repeats = trained.split, len(trained.rows), settings.repeats
    return timing
