"""Before any job: can each dataset and backbone a run needs be loaded on this machine? A run without one
fails in its first job that reads it, after the others have staged for minutes; this says so at the start,
one line per missing input, without loading or building anything."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fastexit_bench.data.loading import dataset_problem
from fastexit_bench.models.backbones import backbone_problem


def preflight(datasets: Iterable[str], backbones: Iterable[str], mirror: str | Path | None) -> list[str]:
    """One line per dataset (local copy under ``mirror``, or a reachable hub copy) and backbone (a folder, an
    installed package, or a cached or reachable hub id) that cannot be loaded here."""
    problems = [dataset_problem(name, mirror) for name in sorted(set(datasets))]
    problems += [backbone_problem(name) for name in sorted(set(backbones))]
    return [problem for problem in problems if problem]
