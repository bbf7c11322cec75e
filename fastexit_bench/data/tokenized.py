"""Tokenize a loaded split once and cache it on disk, keyed by its rows, tokenizer and max length."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import datasets
import pandas as pd
from transformers import PreTrainedTokenizerBase

from fastexit_bench import __version__
from fastexit_bench.data.config import DataConfig
from fastexit_bench.data.loading import LoadedSplit, load_split
from fastexit_bench.data.spec import DatasetSpec
from fastexit_bench.io import cache_entry
from fastexit_bench.locations import Locations, resources_dir

log = logging.getLogger(__name__)


def cache_key(loaded: LoadedSplit, tokenizer: PreTrainedTokenizerBase, max_length: int) -> str:
    """Hash of everything the tokenized rows depend on."""
    rows = pd.util.hash_pandas_object(loaded.frame, index=False).to_numpy().tobytes()
    meta = json.dumps(
        [
            __version__,
            loaded.spec.name,
            loaded.split,
            tokenizer.name_or_path,
            type(tokenizer).__name__,
            len(tokenizer),
            max_length,
        ],
    )
    return hashlib.sha256(rows + meta.encode()).hexdigest()[:20]


def tokenize_split(
    loaded: LoadedSplit, tokenizer: PreTrainedTokenizerBase, max_length: int, cache_dir: Path | None = None
) -> datasets.Dataset:
    """``input_ids``, ``attention_mask`` (+ ``token_type_ids``), ``labels`` and ``length`` per example.

    Sequences are truncated to ``max_length`` but not padded; collators pad per batch.
    """
    path = (
        Path(cache_dir) / f"{loaded.spec.name}-{loaded.split}-{cache_key(loaded, tokenizer, max_length)}"
        if cache_dir
        else None
    )
    if path is not None and (path / "state.json").is_file():
        log.info("tokenized cache hit: %s", path)
        return datasets.load_from_disk(str(path))
    fields = list(loaded.spec.text_fields)

    def encode(batch: dict) -> dict:
        encoded = tokenizer(*(batch[f] for f in fields), truncation=True, max_length=max_length)
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return encoded

    table = datasets.Dataset.from_pandas(loaded.frame, preserve_index=False)
    tokenized = table.map(
        encode, batched=True, remove_columns=fields, desc=f"tokenize {loaded.spec.name}/{loaded.split}"
    )
    tokenized = tokenized.rename_column("label", "labels")
    if path is not None:
        with cache_entry(path) as tmp:  # stagings of the same rows may run at once
            tokenized.save_to_disk(str(tmp))
        tokenized = datasets.load_from_disk(str(path))
    return tokenized


def load_tokenized(
    spec: DatasetSpec,
    split: str,
    tokenizer: PreTrainedTokenizerBase,
    data: DataConfig,
    where: Locations,
) -> tuple[LoadedSplit, datasets.Dataset]:
    """Load one split (a seeded subsample of ``data.max_train`` rows for the training split,
    ``data.max_eval`` for any other), then tokenize it to ``data.max_length`` through the cache under
    ``where.resources``."""
    limit = data.max_train if split == spec.train_split else data.max_eval
    loaded = load_split(spec, split, where.mirror, max_examples=limit, seed=data.seed)
    cache = resources_dir(where.resources) / "cache" / "tokenized"
    return loaded, tokenize_split(loaded, tokenizer, data.max_length, cache)
