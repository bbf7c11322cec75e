"""The clocks a scheduler is served on: the real one, and a virtual one for comparing schedulers on a noisy
machine.

On a shared 2-core machine the median p99 of one scheduler near its capacity moved by up to 1.8x between two
series of runs on the same arrivals (a hiccup anywhere grows the queue), more than the gaps between
schedulers. The virtual clock takes the machine's noise out and leaves the scheduling in: time moves only
by what the work costs. Each model call (embedding, a layer with or without its head, a head, an exit
score) is charged a cost looked up by its kind and shape (every layer of an encoder costs the same), timed
once when the shape is first met (the median of a few calls, on the same model and runtime); the host's
own work between calls (the scheduler's Python, padding, copies, the exit decision) is charged the CPU time
of the serving thread, which a descheduled thread does not accrue; waiting for the next arrival costs
nothing, as the clock jumps to it. Every scheduler of one benchmark shares the cost table, so equal calls
cost every scheduler the same; a machine slow while costs are measured makes every scheduler slower alike,
so compare schedulers within a run. It models a host that waits for each call, as on the CPU, with every
kernel already built (a first call's build is not charged).
"""

from __future__ import annotations

import statistics
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor

from fastexit_bench.serving.record import CLOCK_KINDS

TIMED_CALLS = 5
"""Calls timed (after one untimed) when a call shape is first met; its cost is their median."""

Result = TypeVar("Result")


class Clock(ABC):
    """What a load generator reads time on (seconds since :meth:`start`) and waits with."""

    @abstractmethod
    def start(self) -> None:
        """Time starts at 0 now."""

    @abstractmethod
    def now(self) -> float:
        """Seconds since :meth:`start`."""

    @abstractmethod
    def wait_until(self, moment: float) -> None:
        """Let time pass to ``moment``."""

    def model(self, model: Any) -> Any:
        """The model as schedulers served on this clock call it: itself."""
        return model


class RealClock(Clock):
    """Wall-clock time; waiting sleeps."""

    def start(self) -> None:
        self.origin = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self.origin

    def wait_until(self, moment: float) -> None:
        time.sleep(max(0.0, moment - self.now()))


class VirtualClock(Clock):
    """Time that advances by the cost of model calls and the serving thread's CPU time between them (module
    docstring); waiting jumps to the moment waited for."""

    def __init__(self, measure: Callable[[Callable[[], Any]], float] | None = None) -> None:
        """``measure(call)``: the cost of a call, in seconds (default :func:`median_seconds`)."""
        self.costs: dict[tuple[str, int, int], float] = {}  # by (call, rows, tokens), shared across runs
        self.measure = measure or median_seconds
        self.start()

    def start(self) -> None:
        self.elapsed, self.mark = 0.0, time.thread_time()

    def now(self) -> float:
        return self.elapsed + time.thread_time() - self.mark

    def wait_until(self, moment: float) -> None:
        self.elapsed, self.mark = max(self.now(), moment), time.thread_time()

    def charged(self, key: tuple[str, int, int], call: Callable[[], Result]) -> Result:
        """``call()``'s result; the clock advances by its cost (measured the first time ``key`` is met)
        instead of the time it took."""
        self.elapsed = self.now()
        result = call()  # untimed: the first call of a shape also builds its kernels
        if key not in self.costs:
            self.costs[key] = self.measure(call)
        self.elapsed, self.mark = self.elapsed + self.costs[key], time.thread_time()
        return result

    def model(self, model: Any) -> CostedModel:
        return CostedModel(model, self)


def median_seconds(call: Callable[[], Any]) -> float:
    """The median time of ``TIMED_CALLS`` calls."""
    return statistics.median(timed(call) for _ in range(TIMED_CALLS))


def timed(call: Callable[[], Any]) -> float:
    """Seconds one ``call()`` takes, waiting for a GPU's work to finish."""
    started = time.perf_counter()
    out = call()
    first = out[0] if isinstance(out, tuple) else out
    if isinstance(first, Tensor) and first.is_cuda:
        torch.cuda.synchronize(first.device)
    return time.perf_counter() - started


class CostedModel:
    """The inference interface of an early-exit model (``EarlyExitModel`` or a runtime's ``SegmentedModel``)
    with each call charged to a :class:`VirtualClock`; everything else is the model's."""

    def __init__(self, model: Any, clock: VirtualClock):
        self.model, self.clock = model, clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def eval(self) -> CostedModel:
        self.model.eval()
        return self

    def embed(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        return self.clock.charged(
            ("embed", *input_ids.shape[:2]),
            lambda: self.model.embed(input_ids, attention_mask, token_type_ids),
        )

    def run_layer(self, index: int, hidden: Tensor, additive_mask: Tensor) -> Tensor:
        return self.clock.charged(
            ("layer", *hidden.shape[:2]), lambda: self.model.run_layer(index, hidden, additive_mask)
        )

    def head_logits(self, index: int, hidden: Tensor, mask: Tensor) -> Tensor:
        return self.clock.charged(
            ("head", *hidden.shape[:2]), lambda: self.model.head_logits(index, hidden, mask)
        )

    def layer_and_head(
        self, index: int, hidden: Tensor, additive_mask: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        return self.clock.charged(
            ("layer_and_head", *hidden.shape[:2]),
            lambda: self.model.layer_and_head(index, hidden, additive_mask, mask),
        )

    def exit_score(self, index: int, hidden: Tensor, mask: Tensor) -> Tensor:
        return self.clock.charged(
            ("exit_score", *hidden.shape[:2]), lambda: self.model.exit_score(index, hidden, mask)
        )


def make_clock(kind: str) -> Clock:
    """A clock of ``kind`` (``CLOCK_KINDS``)."""
    if kind not in CLOCK_KINDS:
        raise ValueError(f"clock {kind!r} is not one of {CLOCK_KINDS}")
    return VirtualClock() if kind == "virtual" else RealClock()
