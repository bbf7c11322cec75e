"""Inference settings (the one owner of their defaults) and the record `fastexit-bench latency` writes;
importable without torch (CLI, schema, rules, tables and claims)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from fastexit_bench.execution import Execution
from fastexit_bench.provenance import Provenance
from fastexit_bench.records import VersionedRecord

LATENCY_FORMAT_VERSION = 1
EVAL_BATCH_SIZE = 128
"""Batch size of every full-depth pass (artefacts, dev scores, the reference outputs of latency and serving);
results do not depend on it beyond float rounding."""


@dataclass(frozen=True)
class LatencyConfig:
    """Attributes:
    examples: seeded subsample of the held-out split that is timed (0 in an experiment: no timing).
    batch_sizes: batch sizes timed, each against the same model at full depth (tables and claims show one
        column per size).
    repeats: timed rounds per batch; the median is kept.
    """

    examples: int = 256
    batch_sizes: tuple[int, ...] = (1, 32)
    repeats: int = 5


LATENCY_BATCH_SIZES = LatencyConfig.batch_sizes
"""The batch sizes every table and claim reports measured speed-ups at."""


@dataclass(frozen=True)
class LatencyRow:
    """One timed (operating point, batch size): the point (``setting``: its label, ``policy``, ``value``), the
    mean exit layer, the FLOPs-predicted and the measured speed-up over full depth on the same batches, their
    ratio, and each engine's pass statistics (``total_s``, per-example percentiles in ms)."""

    setting: str
    policy: str
    value: float
    batch_size: int
    mean_exit_layer: float
    predicted_speedup: float
    realized_speedup: float
    realized_over_predicted: float
    full_depth: dict[str, float]
    early_exit: dict[str, float]


@dataclass
class LatencyRecord(VersionedRecord):
    """What `fastexit-bench latency` writes: the model's run (dataset, recipe, seed), where it was timed
    (threads, device, execution, split, examples, repeats) and one :class:`LatencyRow` per (operating
    point, batch size). A model
    without early-exit operating points has no rows and no split. Files written before the record had a version
    (the same keys) read as version 1."""

    VERSION: ClassVar[int] = LATENCY_FORMAT_VERSION
    RERUN: ClassVar[str] = "fastexit-bench latency"

    dataset: str
    recipe: str
    seed: int
    threads: int
    device: str
    execution: Execution
    rows: list[LatencyRow] = field(default_factory=list)
    split: str | None = None
    examples: int | None = None
    repeats: int | None = None
    provenance: Provenance = field(default_factory=Provenance)

    @classmethod
    def _version_of(cls, data: dict[str, Any]) -> Any:
        return data.get(cls.VERSION_KEY, 1)
