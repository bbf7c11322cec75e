"""What `fastexit-bench serve-bench` can be asked for and what it writes: the benchmark's settings (one
owner for their defaults) and its versioned record. Torch-free, so that plots and tables read it anywhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from fastexit_bench.execution import Execution
from fastexit_bench.provenance import Provenance
from fastexit_bench.records import VersionedRecord

SCENARIOS = ("single-stream", "offline", "server", "overload")
SCHEDULERS = ("full-depth", "compaction", "layer-pool", "layer-pool-adaptive", "layer-pool-deadline")
CLOCK_KINDS = ("real", "virtual")
"""What serving time is read on (``serving.clocks``): wall-clock time, or the virtual clock that charges
model calls their measured cost, for comparing schedulers on a noisy machine."""
SERVING_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ServingSettings:
    """One owner for the benchmark's defaults (the CLI's too).

    queries: queries per measurement (each SingleStream, Offline and Server run); the p99 of 2048 queries
        rests on its 21 slowest.
    max_batch / max_wait_ms: the batch limit of every scheduler and the dynamic batcher's longest wait.
    bound_ms: the Server scenario's p99 bound; search_steps: bisection steps of the rate search.
    repeats: SingleStream runs, Server searches and Overload runs per scheduler, taken in turns over the
        schedulers, each Poisson run with its own arrivals; SingleStream's latencies are pooled, of the others
        the median run (the lower middle) is reported, since on a shared machine one search's rate moved 20 %
        between runs minutes apart, more than the gaps the goals are read on.
    warmup: queries served, untimed, before each scheduler's runs.
    deadline_ms: the latency a deadline scheduler forces exits to keep (None: ``bound_ms``).
    overload: the Overload scenario's Poisson rate, as a multiple of full depth's Server rate at the bound
        (a load full depth cannot serve within it): p99, accuracy and forced exits of every scheduler.
    clock: what time is read on (``CLOCK_KINDS``): ``real``, or ``virtual``, where time moves by the measured
        cost of each model call and the host's CPU time, so that a noisy machine's hiccups do not decide a
        comparison of schedulers (``serving.clocks``).
    """

    queries: int = 2048
    max_batch: int = 32
    max_wait_ms: float = 0.0
    bound_ms: float = 50.0
    search_steps: int = 7
    repeats: int = 3
    warmup: int = 64
    seed: int = 0
    scenarios: tuple[str, ...] = SCENARIOS
    schedulers: tuple[str, ...] = SCHEDULERS
    split: str = "validation"
    examples: int = 512
    deadline_ms: float | None = None
    overload: float = 1.5
    clock: str = "real"

    @property
    def deadline_s(self) -> float:
        return (self.deadline_ms if self.deadline_ms is not None else self.bound_ms) / 1e3


@dataclass(frozen=True)
class ServedModel:
    """The trained model served (its folder and run, or with ``replayed`` its evaluation artefact: a model of
    its architecture with exits and answers replayed from its recorded outputs) and the examples its queries
    ask about."""

    path: str
    dataset: str
    recipe: str
    seed: int
    backbone: str
    split: str
    examples: int
    replayed: bool = False


@dataclass(frozen=True)
class ServingEnvironment:
    """Where it was served: the device, torch threads and the execution (precision, attention)."""

    device: str
    threads: int
    execution: Execution


@dataclass
class ServingRecord(VersionedRecord):
    """What `fastexit-bench serve-bench` writes: settings, the exit check, and per scheduler its results
    under each scenario (``results[scheduler][scenario]``)."""

    VERSION: ClassVar[int] = SERVING_FORMAT_VERSION
    RERUN: ClassVar[str] = "fastexit-bench serve-bench"

    model: ServedModel
    policy: str
    value: float
    settings: ServingSettings
    environment: ServingEnvironment
    mean_exit_layer: float
    predicted_speedup: float
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    provenance: Provenance = field(default_factory=Provenance)

    def goals(self) -> dict[str, float]:
        """The ratios the serving goals are set on, where the runs they need were made: Server rates at the p99
        bound (layer-pool-adaptive's against the better of compaction and layer-pool), the SingleStream p99 of
        the queries that never exit against full depth on the same queries, and
        under Overload the deadline scheduler's p99 over the bound and its accuracy drop against layer-pool."""
        out: dict[str, float] = {}
        server = {
            name: r["server"]["rate_at_bound_per_s"] for name, r in self.results.items() if "server" in r
        }
        if server.get("compaction") and "layer-pool" in server:
            out["layer_pool_over_compaction_rate"] = server["layer-pool"] / server["compaction"]
        if server.get("full-depth") and "layer-pool" in server:
            out["layer_pool_over_full_depth_rate"] = server["layer-pool"] / server["full-depth"]
            out["of_predicted_speedup"] = out["layer_pool_over_full_depth_rate"] / self.predicted_speedup
        rivals = [server[name] for name in ("compaction", "layer-pool") if server.get(name)]
        if rivals and "layer-pool-adaptive" in server:
            out["adaptive_over_better_rival_rate"] = server["layer-pool-adaptive"] / max(rivals)
        single = {name: r["single_stream"] for name, r in self.results.items() if "single_stream" in r}
        full = single.get("full-depth", {}).get("never_exit", {}).get("p99_ms")
        for name, key in (
            ("layer-pool", "never_exit_p99_over_full_depth"),
            ("layer-pool-adaptive", "adaptive_never_exit_p99_over_full_depth"),
        ):
            if full and single.get(name, {}).get("never_exit"):
                out[key] = single[name]["never_exit"]["p99_ms"] / full
        overload = {name: r["overload"] for name, r in self.results.items() if "overload" in r}
        deadline, free = overload.get("layer-pool-deadline"), overload.get("layer-pool")
        if deadline:
            out["deadline_overload_p99_over_bound"] = deadline["p99_ms"] / self.settings.bound_ms
        if deadline and free and deadline["accuracy"] is not None:
            out["deadline_overload_accuracy_drop_pt"] = 100 * (free["accuracy"] - deadline["accuracy"])
        return out
