"""How a split is sampled and tokenized: the one owner of these defaults (CLI, schema and rules read them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataConfig:
    """Attributes:
    max_train: seeded subsample of the train split (None: every row).
    max_eval: seeded subsample of each evaluation split (None: every row).
    max_length: tokens per example after truncation (the papers use 128).
    seed: seeds carving of missing splits and subsampling.
    """

    max_train: int | None = None
    max_eval: int | None = None
    max_length: int = 128
    seed: int = 0
