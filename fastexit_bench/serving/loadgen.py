"""A load generator with MLPerf Inference's scenarios, driving one scheduler in this process.

- SingleStream: one query at a time; the next is issued when the previous is answered. Latency p50/p90/p99.
- Offline: every query issued at once. Throughput (queries per second over the whole run).
- Server: queries arrive as a Poisson process at rate λ (exponential gaps from a seeded generator). The
  reported rate is the largest λ whose p99 latency stays under a bound, found by bisection.

Arrivals are open-loop (except in SingleStream): a query's arrival time is fixed in advance, and its latency
runs from that time to the moment its answer is on the host, so time a query spends waiting because the
server was busy counts. Tokenization is done before the clock starts. The clock is the wall clock or a
virtual one that charges model calls their measured cost (``serving.clocks``). The scheduler and the
generator share one thread: while the scheduler steps, arrivals queue up and are admitted at the next turn
of the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from fastexit_bench.serving.clocks import Clock, RealClock
from fastexit_bench.serving.schedulers import Scheduler


@dataclass
class Served:
    """Per query: arrival and answer times (seconds from the start), exit layer, prediction and whether a
    deadline forced its exit."""

    arrivals: np.ndarray
    answered: np.ndarray
    exit_layers: np.ndarray
    predictions: np.ndarray
    forced: np.ndarray

    @classmethod
    def pooled(cls, runs: list[Served]) -> Served:
        """Several runs' queries as one sample, for latency percentiles (its throughput means nothing)."""
        return cls(*(np.concatenate([getattr(run, f.name) for run in runs]) for f in fields(cls)))

    @property
    def latencies_s(self) -> np.ndarray:
        return self.answered - self.arrivals

    def latency_ms(self, where: np.ndarray | None = None) -> dict[str, float]:
        """p50/p90/p99 latency (ms) over all queries, or those ``where`` is true."""
        latencies = 1e3 * (self.latencies_s if where is None else self.latencies_s[where])
        if len(latencies) == 0:
            return {}
        p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
        return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "queries": len(latencies)}

    def throughput_per_s(self) -> float:
        return len(self.answered) / float(self.answered.max() - self.arrivals.min())


def poisson_arrivals(queries: int, rate_per_s: float, seed: int) -> np.ndarray:
    """Arrival times (s) of a Poisson process at ``rate_per_s``, the first at 0."""
    gaps = np.random.default_rng(seed).exponential(1.0 / rate_per_s, size=queries)
    return np.concatenate([[0.0], np.cumsum(gaps[:-1])])


def serve(
    scheduler: Scheduler, queries: int, arrivals: np.ndarray | None = None, clock: Clock | None = None
) -> Served:
    """Serve ``queries`` queries arriving at ``arrivals`` (seconds from the start; sorted), or, with None,
    one at a time as in SingleStream (each arrives when the previous is answered); on ``clock`` (default the
    real one; a ``VirtualClock`` must be the one the scheduler's model is charged to)."""
    closed_loop = arrivals is None
    arrival = np.zeros(queries) if closed_loop else np.asarray(arrivals, dtype=float)
    answered = np.full(queries, np.nan)
    exit_layers = np.zeros(queries, dtype=np.int64)
    predictions = np.zeros(queries)
    forced = np.zeros(queries, dtype=bool)
    issued = done = 0
    clock = clock or RealClock()
    clock.start()
    scheduler.start(clock.now)
    while done < queries:
        now = clock.now()
        while issued < queries and arrival[issued] <= now and (not closed_loop or issued == done):
            scheduler.admit(issued, float(arrival[issued]))
            issued += 1
        ready = scheduler.ready_at()
        if ready <= now:
            answers = scheduler.step()
            finished = clock.now()
            for answer in answers:
                answered[answer.query], exit_layers[answer.query] = finished, answer.exit_layer
                predictions[answer.query], forced[answer.query] = answer.prediction, answer.forced
            done += len(answers)
            if closed_loop and done < queries and issued == done:
                arrival[issued] = finished
            continue
        upcoming = arrival[issued] if issued < queries and not (closed_loop and issued > done) else np.inf
        wake = min(ready, upcoming)
        if wake == np.inf:
            raise RuntimeError(f"scheduler {scheduler.name} holds unanswered queries but has no work to do")
        clock.wait_until(wake)
    return Served(arrival, answered, exit_layers, predictions, forced)


@dataclass
class RatePoint:
    """One Server run: the offered rate and what it gave."""

    rate_per_s: float
    latency: dict[str, float]
    throughput_per_s: float


def max_rate_under_bound(
    run_at: Callable[[float], Served], bound_ms: float, ceiling_per_s: float, steps: int
) -> tuple[float, list[RatePoint]]:
    """The largest Poisson rate (to ``ceiling_per_s`` / 2**steps) whose p99 latency is at most ``bound_ms``,
    by bisection on [0, ``ceiling_per_s``]; every rate tried, in order. 0 when none met the bound."""
    low, high, tried = 0.0, ceiling_per_s, []
    for _ in range(steps):
        rate = (low + high) / 2
        served = run_at(rate)
        point = RatePoint(rate, served.latency_ms(), served.throughput_per_s())
        tried.append(point)
        if point.latency["p99_ms"] <= bound_ms:
            low = rate
        else:
            high = rate
    return low, tried
