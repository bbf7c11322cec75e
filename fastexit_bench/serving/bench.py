"""The serving benchmark: every scheduler under every scenario, on one model, policy and value.

Before anything is timed, each scheduler serves every example once (Offline) and its exits and predictions
are checked against the policy applied to the model's own outputs (what `sweep` computes); a scheduler
that disagrees is refused, since its timing would measure another policy. Each scheduler then gets a
warm-up run and Offline; then SingleStream (its runs' latencies pooled), the Server searches, whose ceiling is
each scheduler's own Offline throughput (no server sustains more than it can do with every query queued), and
the Overload runs (the median run reported), each repeated in turns over the schedulers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from fastexit_bench import provenance
from fastexit_bench.analysis.artifact import LayerOutputs
from fastexit_bench.analysis.policies import ExitPolicy, resolve_policy
from fastexit_bench.errors import FastExitError, PolicyError
from fastexit_bench.execution import ExecutionConfig, running
from fastexit_bench.locations import Locations
from fastexit_bench.models.tracing import measure_fvcore
from fastexit_bench.runtime.latency import set_threads
from fastexit_bench.runtime.predict import predict
from fastexit_bench.runtime.trained import open_replayed, open_trained
from fastexit_bench.serving.clocks import Clock, make_clock
from fastexit_bench.serving.loadgen import Served, max_rate_under_bound, poisson_arrivals, serve
from fastexit_bench.serving.record import ServedModel, ServingEnvironment, ServingRecord, ServingSettings
from fastexit_bench.serving.schedulers import Scheduler, make_scheduler

Measured = TypeVar("Measured")


def serve_bench(
    path: Path,
    policy_name: str,
    value: float,
    settings: ServingSettings,
    *,
    threads: int | None,
    execution: ExecutionConfig,
    where: Locations,
    config: dict[str, Any],
    log: Callable[[str], None] = print,
) -> ServingRecord:
    """Serve the model in folder ``path`` at ``policy_name`` = ``value`` under every scheduler and scenario of
    ``settings`` (:func:`run_benchmark`); ``config`` is recorded as the run's provenance. ``path`` may instead
    be an evaluation artefact (``.npz``): a model of its architecture is served with every exit and answer
    replayed from its recorded outputs (``runtime.trained.open_replayed``), where its weights are not kept."""
    policy = resolve_policy(policy_name)
    if policy.name == "oracle":
        raise PolicyError(
            "the oracle policy reads the labels, which a served query does not have; choose another"
        )
    threads = set_threads(threads)
    replayed = is_artifact(path)
    if replayed:
        opened = open_replayed(
            path, examples=settings.examples, execution=execution, where=where, seed=settings.seed
        )
        run = opened.metadata  # the artefact's model run
        settings = replace(settings, split=run.split)  # an artefact holds one split
    else:
        opened = open_trained(
            path, settings.split, examples=settings.examples, execution=execution, where=where
        )
        run = opened.record
    served = ServedModel(
        str(path),
        run.dataset,
        run.recipe,
        run.seed,
        run.backbone.requested,
        settings.split,
        len(opened.source),
        replayed,
    )
    model, source = opened.model, opened.source
    task = opened.recorded.task if replayed else opened.dataset.task
    flops = measure_fvcore(model)  # fp32 tracing, outside the block that holds cast weights
    with running(model.config, opened.execution, opened.device, inference=model.layers):
        outputs = opened.recorded if replayed else predict(opened.runner, source, task)
        policy.fit(
            outputs
        )  # calibrated policies: temperatures from the served split (exits matter, not scores)
        exits = policy.exit_layers(outputs, value)
        predicted = flops.speedup(exits, source.lengths(), policy.reads, model.num_layers)
        log(
            f"{served.recipe} on {served.dataset} ({served.split}, {len(source)} examples"
            f"{', replayed' if replayed else ''}), {policy.name} at {value}: mean exit layer "
            f"{exits.mean():.2f} of {model.num_layers}, FLOPs-predicted speed-up {predicted:.2f}x; "
            f"{settings.queries} queries per measurement"
            + (", on the virtual clock" if settings.clock == "virtual" else "")
        )
        results = run_benchmark(
            opened.runner,
            source,
            task,
            policy,
            value,
            outputs,
            settings,
            replay=replayed,
            log=log,
        )
    return ServingRecord(
        model=served,
        policy=policy.name,
        value=value,
        settings=settings,
        environment=ServingEnvironment(str(opened.device), threads, opened.execution),
        mean_exit_layer=float(exits.mean()),
        predicted_speedup=predicted,
        results=results,
        provenance=provenance.collect(config=config),
    )


def is_artifact(path: Path) -> bool:
    """Whether ``path`` names an evaluation artefact (served by replay) rather than a model folder."""
    return Path(path).suffix == ".npz"


def query_examples(examples: int, queries: int, seed: int) -> np.ndarray:
    """The example each query asks about: seeded shuffles of the examples, repeated as needed."""
    rng = np.random.default_rng(seed)
    rounds = -(-queries // examples)
    return np.concatenate([rng.permutation(examples) for _ in range(rounds)])[:queries]


def check_exits(scheduler: Scheduler, expected_exits: np.ndarray, expected_predictions: np.ndarray) -> None:
    """Refuse a scheduler whose exits or predictions differ from the policy's on the model's own outputs."""
    served = serve(scheduler, len(scheduler.examples), np.zeros(len(scheduler.examples)))
    order = scheduler.examples
    wrong = (served.exit_layers != expected_exits[order]) | ~np.isclose(
        served.predictions, expected_predictions[order]
    )
    if wrong.any():
        raise FastExitError(
            f"scheduler {scheduler.name} answers {int(wrong.sum())} of {len(order)} examples "
            "with another exit or prediction than the sweep; its timing would measure the wrong "
            "thing (try --precision fp32)"
        )


def run_benchmark(
    model,
    source,
    task: str,
    policy: ExitPolicy,
    value: float,
    outputs: LayerOutputs,
    settings: ServingSettings,
    replay: bool = False,
    log=print,
) -> dict[str, dict[str, Any]]:
    """Every scheduler of ``settings`` under every scenario; ``model``: the model under the run's runtime;
    ``outputs``: the eager model's outputs on ``source`` (what the exits are checked against), or with
    ``replay`` recorded outputs that every scheduler decides and answers on."""
    exits = policy.exit_layers(outputs, value)
    predictions = outputs.predictions()
    every = np.arange(len(source))
    clock = make_clock(settings.clock)
    model = clock.model(model)  # on the virtual clock, charged to it
    results: dict[str, dict[str, Any]] = {}
    fresh_by_name: dict[str, Callable[..., Scheduler]] = {}
    offline_by_name: dict[str, Served] = {}
    examples = query_examples(len(source), settings.queries, settings.seed)
    for name in settings.schedulers:

        def fresh(examples: np.ndarray, name: str = name, deadline: bool = True) -> Scheduler:
            scheduler = make_scheduler(
                name,
                model,
                source,
                examples,
                task,
                policy,
                value,
                settings.max_batch,
                settings.max_wait_ms / 1e3,
                settings.deadline_s if deadline else None,
            )
            return scheduler.replaying(outputs) if replay else scheduler

        expected = np.full(len(every), model.num_layers) if name == "full-depth" else exits
        check_exits(fresh(every, deadline=False), expected, predictions[expected - 1, every])
        fresh_by_name[name] = fresh
        serve(fresh(examples[: settings.warmup]), settings.warmup, np.zeros(settings.warmup), clock)
        results[name] = {}
        if "offline" in settings.scenarios or "server" in settings.scenarios:  # the server's ceiling
            offline = offline_by_name[name] = serve(
                fresh(examples), settings.queries, np.zeros(settings.queries), clock
            )
            results[name]["offline"] = {
                "throughput_per_s": offline.throughput_per_s(),
                **offline.latency_ms(),
            }
            log(f"{name:<11} offline {offline.throughput_per_s():.1f} queries/s")
    if "single-stream" in settings.scenarios:
        # the policy's never-exiting queries, so that every scheduler is read on the same ones
        never = exits[examples] == model.num_layers
        streams = in_turns(
            fresh_by_name,
            settings.repeats,
            lambda name, _: serve(fresh_by_name[name](examples), settings.queries, clock=clock),
        )
        for name, runs in streams.items():
            pooled = Served.pooled(runs)
            results[name]["single_stream"] = {
                "all": pooled.latency_ms(),
                "never_exit": pooled.latency_ms(np.tile(never, len(runs))),
                "runs": len(runs),
            }
            log(
                f"{name:<11} single-stream p50 {pooled.latency_ms()['p50_ms']:.2f} ms, "
                f"p99 {pooled.latency_ms()['p99_ms']:.2f} ms ({len(runs)} runs pooled)"
            )
    if "server" in settings.scenarios:
        searches = in_turns(
            fresh_by_name,
            settings.repeats,
            lambda name, turn: server_search(
                fresh_by_name[name], examples, offline_by_name[name], settings, clock, turn, log
            ),
        )
        for name, found in searches.items():
            results[name]["server"] = median_run(found, "rate_at_bound_per_s")
            rate = results[name]["server"]["rate_at_bound_per_s"]
            log(
                f"{name:<11} server {rate:.1f} queries/s at p99 <= {settings.bound_ms} ms "
                f"(median of {[round(r, 1) for r in results[name]['server']['runs']]})"
                if rate > 0
                else f"{name:<11} server: no rate tried kept p99 <= {settings.bound_ms} ms (reported as 0)"
            )
    if "overload" in settings.scenarios:
        overload(fresh_by_name, results, outputs, examples, settings, clock, log)
    if settings.queries < 100:
        log(f"note: with {settings.queries} queries, p99 is the slowest query; use --queries 1000 or more")
    return results


def in_turns(
    names: Iterable[str], repeats: int, measure: Callable[[str, int], Measured]
) -> dict[str, list[Measured]]:
    """``measure(name, turn)`` ``repeats`` times per name, taking the names in turns (so that a slow spell of a
    shared machine falls on every scheduler alike); a measurement with arrivals seeds them with ``turn``."""
    runs: dict[str, list[Measured]] = {name: [] for name in names}
    for turn in range(repeats):
        for name, found in runs.items():
            found.append(measure(name, turn))
    return runs


def median_run(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run whose ``key`` is the median (the lower middle of an even count), with every run's ``key``
    beside it under ``runs``."""
    chosen = sorted(runs, key=lambda run: run[key])[(len(runs) - 1) // 2]
    return {**chosen, "runs": [run[key] for run in runs]}


def serve_poisson(
    fresh: Callable[..., Scheduler],
    examples: np.ndarray,
    rate: float,
    settings: ServingSettings,
    clock: Clock,
    turn: int,
) -> Served:
    """``settings.queries`` queries arriving as a Poisson process at ``rate``, the ``turn``-th repeat's
    arrivals (seed ``settings.seed + turn``), on ``clock``."""
    arrivals = poisson_arrivals(settings.queries, rate, settings.seed + turn)
    return serve(fresh(examples), settings.queries, arrivals, clock)


def overload(
    fresh_by_name: dict[str, Callable[..., Scheduler]],
    results: dict[str, dict[str, Any]],
    outputs: LayerOutputs,
    examples: np.ndarray,
    settings: ServingSettings,
    clock: Clock,
    log=print,
) -> None:
    """Every scheduler at ``settings.overload`` x full depth's Server rate at the bound: p99, accuracy on the
    queries' labels and the share (and accuracy) of exits a deadline forced, of the run with the median p99
    of ``settings.repeats``; into ``results[name]``."""
    full = results.get("full-depth", {}).get("server", {}).get("rate_at_bound_per_s")
    if not full:
        log("overload: needs full depth's Server rate (the full-depth scheduler and the server scenario)")
        return
    rate = settings.overload * full
    labels = outputs.labels[examples]
    scored = outputs.task == "classification"  # accuracy: a regression value is never "right"

    def run_at_overload(name: str, turn: int) -> dict[str, Any]:
        served = serve_poisson(fresh_by_name[name], examples, rate, settings, clock, turn)
        right, forced = served.predictions == labels, served.forced
        return {
            "rate_per_s": rate,
            **served.latency_ms(),
            "accuracy": float(right.mean()) if scored else None,
            "forced_share": float(forced.mean()),
            "forced_accuracy": float(right[forced].mean()) if scored and forced.any() else None,
            "within_deadline": float((served.latencies_s <= settings.deadline_s).mean()),
        }

    for name, runs in in_turns(fresh_by_name, settings.repeats, run_at_overload).items():
        results[name]["overload"] = chosen = median_run(runs, "p99_ms")
        accuracy = f"accuracy {chosen['accuracy']:.3f}, " if scored else ""
        log(
            f"{name:<11} overload {rate:.1f} queries/s: p99 {chosen['p99_ms']:.1f} ms "
            f"(median of {[round(p, 1) for p in chosen['runs']]}), {accuracy}"
            f"forced exits {chosen['forced_share']:.1%}"
        )


def server_search(
    fresh,
    examples: np.ndarray,
    offline: Served,
    settings: ServingSettings,
    clock: Clock,
    turn: int = 0,
    log=print,
) -> dict[str, Any]:
    """One bisection for the largest Poisson rate whose p99 stays under the bound, with the ``turn``-th
    repeat's arrivals, up to the scheduler's ``offline`` throughput."""

    def run_at(rate: float) -> Served:
        served = serve_poisson(fresh, examples, rate, settings, clock, turn)
        log(f"  server search: {rate:.1f} queries/s offered, p99 {served.latency_ms()['p99_ms']:.2f} ms")
        return served

    rate, tried = max_rate_under_bound(
        run_at, settings.bound_ms, offline.throughput_per_s(), settings.search_steps
    )
    at_bound = next((p.latency for p in tried if p.rate_per_s == rate), {})
    return {
        "rate_at_bound_per_s": rate,
        "at_bound": at_bound,
        "ceiling_per_s": offline.throughput_per_s(),
        "tried": [
            {"rate_per_s": p.rate_per_s, "throughput_per_s": p.throughput_per_s, **p.latency} for p in tried
        ],
    }
