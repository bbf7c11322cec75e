"""Latency harness: warmup, repeats, median and p90, with the right clock for the device.

On CUDA each timed call is bracketed by CUDA events after a synchronize; on CPU ``time.perf_counter``
is used and the torch thread count is fixed and recorded. Quote medians and ratios measured in one
run, never a lone absolute time from a shared machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch


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


def time_call(fn: Callable[[], Any], device: torch.device, warmup: int = 3, repeats: int = 10) -> Timing:
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
