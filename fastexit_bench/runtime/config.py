"""Latency settings: the one owner of their defaults, importable without torch (CLI, schema and rules)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LatencyConfig:
    """Attributes:
    examples: seeded subsample of the held-out split that is timed (0 in an experiment: no timing).
    batch_sizes: batch sizes timed, each against the same model at full depth.
    repeats: timed rounds per batch; the median is kept.
    """

    examples: int = 256
    batch_sizes: tuple[int, ...] = (1, 32)
    repeats: int = 5
