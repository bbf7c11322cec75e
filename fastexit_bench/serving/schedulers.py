"""Schedulers that serve one model, exit policy and value to a stream of queries, one step at a time.

A scheduler is told of each query as it arrives (``admit``), says from when it may do work (``ready_at``),
and does one step of work when asked (``step``), returning the queries that step answered. The load
generator (``serving.loadgen``) owns the clock; schedulers never sleep.

- ``full-depth``: dynamic batching, the reference. A batch of up to ``max_batch`` waiting queries (oldest
  first) is launched when that many wait or the oldest has waited ``max_wait_s``; every query runs every
  layer and is answered when the batch ends.
- ``compaction``: the same batching through :class:`EarlyExitEngine`, which drops exited queries from the
  batch as it goes; a query is still answered when its batch ends, and new queries wait for it.
- ``layer-pool``: continuous batching across layers. A FIFO pool per layer; each step runs one layer on up
  to ``max_batch`` queries of one pool (embedding them first for layer 1), padded to the longest of those
  only. Which pool: the deepest one holding a full batch (survivors of several batches merge into full
  batches, the FastBERT #35 proposal), else the one holding the oldest query (no query waits behind newer
  ones forever). A query leaves the moment its exit is decided; an arrival joins layer 1's pool at the next
  step. Examples at different depths never share a layer call.
- ``layer-pool-adaptive``: layer-pool, but a lone query (the only one waiting, none in flight) runs every
  layer in one engine call, without the pools' per-layer bookkeeping.
- ``layer-pool-deadline``: layer-pool with a latency deadline: before a step, every query beyond layer 1
  whose time in the system would pass the deadline by the end of that step (step times measured per layer
  and batch size as it serves, as a slowly decaying upper envelope: an underestimate makes answers late),
  in any pool, leaves at once with the prediction of the last head it passed, a *forced* exit. A query
  still in layer 1's pool has no head yet: layer 1 runs first whenever the step the rule picked would leave
  its oldest query too little time to pass layer 1 by the deadline, and takes no more queries than can pass
  it by the deadline of the oldest one that still can.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from fastexit_bench.analysis.artifact import LayerOutputs
from fastexit_bench.analysis.policies import ExitPolicy, resolve_policy
from fastexit_bench.models.early_exit import EarlyExitModel
from fastexit_bench.registry import Registry
from fastexit_bench.runtime.batches import TokenBatches, power_of_two_at_least
from fastexit_bench.runtime.engine import EarlyExitEngine, exit_logits, leaving_after, run_step


@dataclass(frozen=True)
class Answer:
    """One answered query: its id, exit layer (1-based), prediction (class id or regression value) and whether
    a deadline forced the exit."""

    query: int
    exit_layer: int
    prediction: float
    forced: bool = False


class Scheduler(ABC):
    """Serves queries; ``examples[query]`` is the row of ``source`` a query asks about."""

    name: str
    clock: Callable[[], float] = time.perf_counter
    """The load generator's clock (seconds, the arrivals' origin), set by :meth:`start`."""
    recorded: LayerOutputs | None = None
    """Outputs of every row of ``source`` that exits are decided on instead of the heads' (:meth:`replaying`)."""
    recorded_predictions: np.ndarray | None = None

    def __init__(
        self, model: EarlyExitModel, source: TokenBatches, examples: np.ndarray, task: str, max_batch: int
    ):
        self.model, self.source, self.examples, self.task, self.max_batch = (
            model.eval(),
            source,
            examples,
            task,
            max_batch,
        )

    def start(self, clock: Callable[[], float]) -> None:
        """Serving starts; ``clock`` reads the time arrivals are given in."""
        self.clock = clock

    @abstractmethod
    def admit(self, query: int, arrival: float) -> None:
        """A query arrived at clock time ``arrival`` (seconds)."""

    @abstractmethod
    def ready_at(self) -> float:
        """The earliest clock time a step may run (``inf`` while nothing waits)."""

    @abstractmethod
    def step(self) -> list[Answer]:
        """One unit of work; the queries it answered."""

    def replaying(self, recorded: LayerOutputs) -> Scheduler:
        """Decide exits on ``recorded`` while running the same layers and heads, and answer with its
        predictions: a model of the recorded one's architecture with other weights is then timed at the
        recorded model's exits and scored on its answers (``runtime.engine``)."""
        self.recorded, self.recorded_predictions = recorded, recorded.predictions()
        return self

    def answer(self, query: int, exit_layer: int, prediction: float, forced: bool = False) -> Answer:
        """``query``'s answer at ``exit_layer``: ``prediction`` (the running head's), or while replaying the
        recorded model's prediction at that exit."""
        if self.recorded is not None:
            prediction = float(self.recorded_predictions[exit_layer - 1, self.examples[query]])
        return Answer(query, exit_layer, prediction, forced)

    def predictions(self, logits: Tensor) -> np.ndarray:
        logits = logits.float().cpu().numpy()  # on a GPU, this waits for the work: answers are on the host
        return logits[:, 0] if self.task == "regression" else logits.argmax(-1)

    def run_through(self, engine: EarlyExitEngine, queries: list[int]) -> list[Answer]:
        """``queries`` as one batch through ``engine``, every layer in one call; all answered at its end."""
        rows = self.examples[queries]
        batch = self.source.batch(torch.from_numpy(rows))
        out = engine.run(
            **batch.inputs, recorded=None if self.recorded is None else self.recorded.select(rows)
        )
        return [
            self.answer(q, int(layer), float(p))
            for q, layer, p in zip(queries, out.exit_layers, self.predictions(out.logits))
        ]


SCHEDULER_TYPES: Registry[type[Scheduler]] = Registry("scheduler")
"""Every scheduler class by its ``name`` (``@SCHEDULER_TYPES.add``); each takes ``(model, source, examples,
task, max_batch, policy, value, max_wait_s, deadline_s)`` (``deadline_s``: read by a deadline scheduler only). ``serving.record.SCHEDULERS`` lists the same names without
torch, for the command line."""


class BatchScheduler(Scheduler):
    """Dynamic batching in front of an engine that answers a whole batch at once (:meth:`engine`)."""

    def __init__(
        self,
        model: EarlyExitModel,
        source: TokenBatches,
        examples: np.ndarray,
        task: str,
        max_batch: int,
        policy: ExitPolicy,
        value: float,
        max_wait_s: float = 0.0,
        deadline_s: float | None = None,
    ):
        super().__init__(model, source, examples, task, max_batch)
        self.engine, self.max_wait_s = self.make_engine(policy, value), max_wait_s
        self.waiting: deque[tuple[int, float]] = deque()

    @abstractmethod
    def make_engine(self, policy: ExitPolicy, value: float) -> EarlyExitEngine:
        """The engine every batch runs through."""

    def admit(self, query: int, arrival: float) -> None:
        self.waiting.append((query, arrival))

    def ready_at(self) -> float:
        if not self.waiting:
            return float("inf")
        return float("-inf") if len(self.waiting) >= self.max_batch else self.waiting[0][1] + self.max_wait_s

    @torch.inference_mode()
    def step(self) -> list[Answer]:
        queries = [self.waiting.popleft()[0] for _ in range(min(self.max_batch, len(self.waiting)))]
        return self.run_through(self.engine, queries)


@SCHEDULER_TYPES.add
class FullDepth(BatchScheduler):
    """The reference: every query runs every layer (the policy and value are ignored)."""

    name = "full-depth"

    def make_engine(self, policy: ExitPolicy, value: float) -> EarlyExitEngine:
        return EarlyExitEngine(self.model, resolve_policy("static"), self.model.num_layers, self.task)


@SCHEDULER_TYPES.add
class Compaction(BatchScheduler):
    """Early exit inside each batch: exited queries leave the batch as it goes deeper."""

    name = "compaction"

    def make_engine(self, policy: ExitPolicy, value: float) -> EarlyExitEngine:
        return EarlyExitEngine(self.model, policy, value, self.task)


@dataclass
class InFlight:
    """A query inside the layer pools: its hidden states (its own tokens only) and what its heads said."""

    query: int
    arrival: float
    hidden: Tensor | None = None
    logits: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


def padded(queries: list[InFlight]) -> tuple[Tensor, Tensor]:
    """The queries' hidden states right-padded into one batch, and its mask (True on their own tokens)."""
    hidden = torch.nn.utils.rnn.pad_sequence([q.hidden for q in queries], batch_first=True)
    lengths = torch.tensor([len(q.hidden) for q in queries], device=hidden.device)
    return hidden, torch.arange(hidden.shape[1], device=hidden.device)[None, :] < lengths[:, None]


@SCHEDULER_TYPES.add
class LayerPool(Scheduler):
    """Continuous batching across layers (see the module docstring for the rule that picks the layer)."""

    name = "layer-pool"
    forces_exits = False  # with deadline_s: layer-pool-deadline

    def __init__(
        self,
        model: EarlyExitModel,
        source: TokenBatches,
        examples: np.ndarray,
        task: str,
        max_batch: int,
        policy: ExitPolicy,
        value: float,
        max_wait_s: float = 0.0,
        deadline_s: float | None = None,
    ):
        super().__init__(model, source, examples, task, max_batch)  # launches when idle: no wait
        self.policy, self.value = policy, value
        self.pools: list[deque[InFlight]] = [deque() for _ in range(model.num_layers)]
        self.deadline_s = deadline_s if self.forces_exits else None
        self.step_s: dict[tuple[int, int], float] = {}  # step time's upper envelope by (layer, batch bucket)

    def admit(self, query: int, arrival: float) -> None:
        self.pools[0].append(InFlight(query, arrival))

    def ready_at(self) -> float:
        return float("-inf") if any(self.pools) else float("inf")

    def next_layer(self) -> int:
        full = [k for k, pool in enumerate(self.pools) if len(pool) >= self.max_batch]
        if full:
            return full[-1]
        return min((k for k, pool in enumerate(self.pools) if pool), key=lambda k: self.pools[k][0].arrival)

    @torch.inference_mode()
    def step(self) -> list[Answer]:
        k = self.next_layer()
        if self.deadline_s is not None:
            k = self.first_layer_if_urgent(k)
            forced = self.force_late(self.clock() + self.step_estimate(k, len(self.pools[k])))
            if forced:  # answered now, not after the step they leave to avoid
                return forced
        pool = self.pools[k]
        group = [pool.popleft() for _ in range(self.batch_size(k))]
        started = self.clock()
        answers = self.run_layer(k, group)
        elapsed = self.clock() - started
        key = (k, power_of_two_at_least(len(group)))
        # up at once to a slower step, down slowly: a deadline kept on the mean step time is missed on every
        # slower one (on 2 shared CPU cores, an EMA left 4-7 % of answers late at 1.5x full depth's load)
        self.step_s[key] = (
            max(elapsed, 0.97 * self.step_s[key] + 0.03 * elapsed) if key in self.step_s else elapsed
        )
        return answers

    def batch_size(self, k: int) -> int:
        """How many queries layer ``k``'s next step takes: a batch, or as many as are waiting. With a deadline,
        layer 1 takes no more than can pass it by the deadline of its oldest query that still can (by the
        measured step times, halving the batch; at least one): a query waiting for layer 1 has no head to
        leave with, and layer 1's step time grows with its batch (embedding and padding included)."""
        n = min(self.max_batch, len(self.pools[k]))
        if self.deadline_s is None or k != 0:
            return n
        now, fastest = self.clock(), self.step_estimate(0, 1)
        left = next(
            (
                q.arrival + self.deadline_s - now
                for q in self.pools[0]
                if q.arrival + self.deadline_s - now >= fastest
            ),
            None,
        )
        if left is None:  # none can make it any more: a full batch serves the most
            return n
        while n > 1 and self.step_estimate(0, n) > left:
            n = power_of_two_at_least(n) // 2
        return n

    def step_estimate(self, k: int, waiting: int) -> float:
        """How long layer ``k``'s next step takes, on ``waiting`` queries (up to a batch): its recent time at
        that batch size's bucket, else the longest measured at layer ``k`` (0 before any)."""
        key = (k, power_of_two_at_least(min(waiting, self.max_batch)))
        if key in self.step_s:
            return self.step_s[key]
        return max((t for (layer, _), t in self.step_s.items() if layer == k), default=0.0)

    def first_layer_if_urgent(self, k: int) -> int:
        """Layer 1 instead of ``k`` when running ``k`` first would leave layer 1's oldest query unable to pass
        layer 1 by its deadline (it has no head to leave with before then)."""
        first = self.pools[0]
        if k == 0 or not first:
            return k
        done = self.clock() + self.step_estimate(k, len(self.pools[k])) + self.step_estimate(0, len(first))
        return 0 if done > first[0].arrival + self.deadline_s else k

    def force_late(self, end: float) -> list[Answer]:
        """Answer now every query beyond layer 1 that would pass the deadline by ``end`` (the next step's end),
        each with its last head's prediction; the others stay in their pools."""
        answers = []
        for k in range(1, len(self.pools)):
            late = [q for q in self.pools[k] if end > q.arrival + self.deadline_s]
            if not late:
                continue
            self.pools[k] = deque(q for q in self.pools[k] if end <= q.arrival + self.deadline_s)
            if late[0].logits:  # a policy that reads every head: the last one's logits are at hand
                logits = torch.from_numpy(np.stack([q.logits[-1] for q in late]))
            else:
                logits = self.model.head_logits(k - 1, *padded(late))
            predictions = self.predictions(logits)
            answers += [self.answer(q.query, k, float(p), forced=True) for q, p in zip(late, predictions)]
        return answers

    def run_layer(self, k: int, group: list[InFlight]) -> list[Answer]:
        """Layer ``k`` (0-based) on ``group``: the queries whose exit it decides are answered, the others move
        to the next layer's pool."""
        model = self.model
        if k == 0:
            batch = self.source.batch(torch.from_numpy(self.examples[[q.query for q in group]]))
            hidden, additive = model.embed(**batch.inputs)
            mask = batch.inputs["attention_mask"].bool()
        else:
            hidden, mask = padded(group)
            additive = model.additive_mask(mask, hidden.dtype)
        hidden, logits, scores = run_step(model, self.policy.reads, k, hidden, additive, mask)
        host_logits = logits.float().cpu().numpy() if logits is not None else None
        for i, query in enumerate(group):
            if host_logits is not None:
                query.logits.append(host_logits[i])
            if scores is not None:
                query.scores.append(float(scores[i]))
        leaving = leaving_after(self.policy, self.value, self.seen(group, k + 1), model.num_layers)
        answers = []
        if leaving.any():
            leavers = [q for q, leaves in zip(group, leaving) if leaves]
            predictions = self.predictions(exit_logits(model, k, hidden, mask, logits, leaving))
            answers = [self.answer(q.query, k + 1, float(p)) for q, p in zip(leavers, predictions)]
        lengths = mask.sum(1).tolist()
        for i in np.flatnonzero(~leaving):
            group[i].hidden = hidden[i, : lengths[i]]
            self.pools[k + 1].append(group[i])
        return answers

    def seen(self, group: list[InFlight], layers: int) -> LayerOutputs:
        """What the policy decides on: the group's outputs of its first ``layers`` exits."""
        if self.recorded is not None:
            return self.recorded.select(self.examples[[q.query for q in group]], layers)
        classes = self.model.num_outputs
        logits = (
            np.stack([np.stack(q.logits) for q in group], axis=1)
            if group[0].logits
            else np.zeros((layers, len(group), classes), dtype=np.float32)
        )
        scores = np.array([q.scores for q in group], dtype=np.float32).T if group[0].scores else None
        return LayerOutputs(logits, self.task, scores)


@SCHEDULER_TYPES.add
class LayerPoolDeadline(LayerPool):
    """Layer-pool with a latency deadline: late queries leave with their last head's answer."""

    name = "layer-pool-deadline"
    forces_exits = True


@SCHEDULER_TYPES.add
class LayerPoolAdaptive(LayerPool):
    """Layer-pool, but a lone query runs every layer in one engine call: it then pays no per-layer pool
    bookkeeping, the one place compaction's path is cheaper. Two or more queries take layer-pool's steps: with
    oneDNN's kernel cache sized for early exit (``execution.ONEDNN_PRIMITIVE_CACHE``), layer-pool served every
    load up to its capacity at a p99 as low as or lower than compaction's batches (on the virtual clock;
    docs/serving.md), which an earlier rule (compaction while fewer than a batch waited) followed at 1.1-1.2x
    layer-pool's p99. Exits are the policy's on both paths."""

    name = "layer-pool-adaptive"

    def __init__(self, *args, **kwargs):  # LayerPool's arguments (`SCHEDULER_TYPES`)
        super().__init__(*args, **kwargs)
        self.engine = EarlyExitEngine(self.model, self.policy, self.value, self.task)

    def light(self) -> bool:
        """Whether the next step runs the engine: one query waits for layer 1 and none is beyond it."""
        return len(self.pools[0]) == 1 and not any(self.pools[1:])

    @torch.inference_mode()
    def step(self) -> list[Answer]:
        if not self.light():
            return super().step()
        return self.run_through(self.engine, [self.pools[0].popleft().query])


def make_scheduler(
    name: str,
    model: EarlyExitModel,
    source: TokenBatches,
    examples: np.ndarray,
    task: str,
    policy: ExitPolicy,
    value: float,
    max_batch: int,
    max_wait_s: float = 0.0,
    deadline_s: float | None = None,
) -> Scheduler:
    """The scheduler registered as ``name`` serving ``policy`` at ``value`` (``deadline_s``: for a scheduler
    that forces exits; None: it forces none)."""
    scheduler = SCHEDULER_TYPES.get(name)
    return scheduler(model, source, examples, task, max_batch, policy, value, max_wait_s, deadline_s)
