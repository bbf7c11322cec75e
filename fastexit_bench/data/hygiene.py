"""Data hygiene: repeated texts, texts an evaluation split shares with train, and class balance.

A score on rows the model trained on overstates it, and a training split of one class cannot teach a
classifier; neither stops a run by itself (some public splits overlap), so both are counted where the data
is shown (``data show``) and kept in the training record, with a warning a user will see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from fastexit_bench.data.loading import LoadedSplit


@dataclass(frozen=True)
class SplitHygiene:
    """Attributes:
    rows: rows in the split.
    repeated_texts: rows whose text fields equal an earlier row's in the same split.
    labels: rows per label (classification) or min/mean/max (regression).
    shared_with_train: rows whose text fields also occur in the train split (None for train itself).
    """

    rows: int
    repeated_texts: int
    labels: dict[str, Any]
    shared_with_train: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text_keys(loaded: LoadedSplit) -> np.ndarray:
    return pd.util.hash_pandas_object(loaded.frame[list(loaded.spec.text_fields)], index=False).to_numpy()


def check_splits(train: LoadedSplit, others: Sequence[LoadedSplit] = ()) -> dict[str, SplitHygiene]:
    """:class:`SplitHygiene` of ``train`` and of each of ``others`` (compared with ``train``), by split name."""
    train_keys = _text_keys(train)
    report = {}
    for loaded in (train, *others):
        keys = train_keys if loaded is train else _text_keys(loaded)
        shared = None if loaded is train else int(np.isin(keys, train_keys).sum())
        report[loaded.split] = SplitHygiene(
            len(keys), int(len(keys) - len(np.unique(keys))), loaded.label_counts(), shared
        )
    return report


def warnings(report: dict[str, SplitHygiene], train_split: str, task: str) -> list[str]:
    """One line per problem worth a user's attention: shared texts, a training split of one class."""
    lines = [
        f"{split}: {h.shared_with_train} of {h.rows} rows also occur in {train_split}; scores on them "
        "overstate the model"
        for split, h in report.items()
        if h.shared_with_train
    ]
    train = report[train_split]
    if task != "regression" and len([n for n in train.labels.values() if n]) < 2:
        lines.append(f"{train_split}: one class only ({train.labels}); a classifier cannot learn from it")
    return lines
