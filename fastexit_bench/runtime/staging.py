"""Staging: every split of a dataset loaded, subsampled and tokenized with a backbone's tokenizer into the
cache under ``resources``, so that training and evaluation jobs read local files only."""

from __future__ import annotations

from typing import Any

from fastexit_bench import provenance
from fastexit_bench.data.config import DataConfig
from fastexit_bench.data.spec import DATASETS
from fastexit_bench.data.tokenized import load_tokenized
from fastexit_bench.locations import Locations
from fastexit_bench.models.backbones import check_length, load_backbone, position_limit


def stage_dataset(
    name: str, backbone: str, data: DataConfig, where: Locations, config: dict[str, Any], log=print
) -> dict[str, Any]:
    """Stage dataset ``name`` for ``backbone`` (``data``: subsample sizes, length, seed) and return its summary:
    per split its rows, labels, origin, mean tokens, truncated rows and cache file; ``config`` is recorded as
    the run's provenance."""
    spec = DATASETS.get(name)
    model, tokenizer, resolved = load_backbone(backbone, where.resources)
    check_length(data.max_length, position_limit(model.config, model.embeddings), backbone)
    splits = {}
    for split in spec.loadable_splits:
        loaded, tokenized = load_tokenized(spec, split, tokenizer, data, where)
        lengths = tokenized["length"]
        splits[split] = {
            "rows": len(tokenized),
            "labels": loaded.label_counts(),
            "origin": loaded.origin,
            "tokens_mean": sum(lengths) / len(lengths),
            "truncated_rows": sum(n >= data.max_length for n in lengths),
            "cache": tokenized.cache_files[0]["filename"] if tokenized.cache_files else None,
        }
        log(f"{spec.name}/{split}: {len(tokenized)} rows, mean {splits[split]['tokens_mean']:.1f} tokens")
    return {
        "provenance": provenance.collect(config=config),
        "dataset": spec.name,
        "backbone": {
            "requested": resolved.requested,
            "location": resolved.location,
            "source": resolved.source,
        },
        "splits": splits,
    }
