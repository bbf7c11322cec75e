"""Where training and evaluation batches come from: tokenized text, or cached per-layer [CLS] features.

Both sources hand out batches by example index and know how to run the model on them, so the
training loop and the evaluator do not care whether the backbone runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import datasets
import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from fastexit_bench.errors import FastExitError
from fastexit_bench.models.early_exit import AllExitsOutput, EarlyExitModel

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class Batch:
    inputs: dict[str, Tensor]
    labels: Tensor | None


@dataclass
class FlatColumns:
    """A tokenized dataset's model inputs as flat arrays (each example's tokens at ``starts[i]``, ``lengths[i]``
    long) and its labels: what a batch is cut from with numpy, without a trip through Python lists."""

    tokens: dict[str, np.ndarray]
    starts: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray | None

    @classmethod
    def of(cls, dataset: datasets.Dataset) -> FlatColumns:
        table = dataset.with_format("arrow")[:]
        tokens, offsets = {}, None
        for name in MODEL_INPUTS:
            if name in table.column_names:
                column = table.column(name).combine_chunks()
                tokens[name] = column.flatten().to_numpy().astype(np.int64)
                offsets = column.offsets.to_numpy() if offsets is None else offsets
        labels = table.column("labels").to_numpy() if "labels" in table.column_names else None
        if labels is not None:  # the dtypes `torch.tensor` gives a list of Python numbers
            labels = labels.astype(np.float32 if np.issubdtype(labels.dtype, np.floating) else np.int64)
        starts = offsets[:-1] - offsets[0]  # flatten() starts at the first offset, not at 0
        return cls(tokens, starts, np.diff(offsets), labels)


class TokenBatches:
    """Tokenized examples (see :func:`fastexit_bench.data.tokenized.tokenize_split`), padded per batch: on the
    right, with the tokenizer's pad ids, as ``tokenizer.pad`` pads them. Batches are cut from flat arrays
    (:class:`FlatColumns`, built once, on first use): a batch of 32 through ``tokenizer.pad`` cost about
    0.7 ms (profiled), a sixth of the bf16 layer-1 step at which layer-pool pays it."""

    def __init__(self, dataset: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, device: str = "cpu"):
        if tokenizer.padding_side != "right":
            raise FastExitError(
                f"{type(tokenizer).__name__} pads on the {tokenizer.padding_side}; the suite's batches pad "
                "on the right (set tokenizer.padding_side = 'right')"
            )
        columns = [c for c in (*MODEL_INPUTS, "labels") if c in dataset.column_names]
        known = "length" in dataset.column_names
        self._lengths = np.asarray(dataset["length"] if known else [len(ids) for ids in dataset["input_ids"]])
        self.dataset = dataset.select_columns(columns)
        self.tokenizer = tokenizer
        self.pad_ids = {
            "input_ids": tokenizer.pad_token_id,
            "attention_mask": 0,
            "token_type_ids": tokenizer.pad_token_type_id,
        }
        self.device = torch.device(device)
        self._content_hash: str | None = None
        self._flat: FlatColumns | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def has_labels(self) -> bool:
        return "labels" in self.dataset.column_names

    def label_mean(self) -> float:
        """The mean label (where a regression model's exits start, ``EarlyExitModel.start_outputs_at``)."""
        return float(np.mean(self.dataset["labels"]))

    def lengths(self) -> np.ndarray:
        """Tokens per example (for length grouping and bucketing)."""
        return self._lengths

    def token_ids(self) -> np.ndarray:
        """Every token id of every example, flattened (what a trimmed vocabulary must hold)."""
        return self._columns().tokens["input_ids"]

    def _columns(self) -> FlatColumns:
        """The flat arrays batches are cut from, built once (the rows never change)."""
        if self._flat is None:
            self._flat = FlatColumns.of(self.dataset)
        return self._flat

    def content_hash(self) -> str:
        """sha256 of every example's token ids and label, in order: what a checkpoint must have trained on
        to be resumed (another mirror, subsample, tokenizer or max length gives another hash). Computed once:
        the rows never change, and `train` records it before the trainer's fingerprint reads it."""
        if self._content_hash is None:
            self._content_hash = self._hash_rows()
        return self._content_hash

    def _hash_rows(self) -> str:
        digest = hashlib.sha256()
        table = self.dataset.with_format("arrow")[:]
        for name in sorted(table.column_names):
            column = table.column(name).combine_chunks()
            if hasattr(column, "flatten"):  # a list column: its lengths, then its values
                digest.update(column.value_lengths().to_numpy().tobytes())
                column = column.flatten()
            digest.update(name.encode() + column.to_numpy(zero_copy_only=False).tobytes())
        return digest.hexdigest()

    def batch(self, indices: Tensor) -> Batch:
        """The examples at ``indices``, right-padded to the longest of them (an attention mask of ones on
        their tokens where the data holds none)."""
        flat, rows = self._columns(), indices.numpy()
        lengths = flat.lengths[rows]
        offsets = np.arange(lengths.max(initial=0))
        real = offsets[None, :] < lengths[:, None]
        at = np.where(real, flat.starts[rows, None] + offsets[None, :], 0)
        inputs = {
            name: np.where(real, tokens[at], self.pad_ids[name]) for name, tokens in flat.tokens.items()
        }
        inputs.setdefault("attention_mask", real.astype(np.int64))
        return Batch(
            {name: torch.from_numpy(values).to(self.device) for name, values in inputs.items()},
            torch.from_numpy(flat.labels[rows]).to(self.device) if flat.labels is not None else None,
        )

    def exits(self, model: EarlyExitModel, batch: Batch, last_only: bool = False) -> AllExitsOutput:
        return model.forward_all(**batch.inputs, last_only=last_only)


class CachedPooledFeatures:
    """Per-layer pooled vectors ([CLS] or token mean) of a frozen backbone, computed once and reused every epoch.

    Exact for heads that read only the pooled vector (DeeBERT highways, BERxiT's scorer): off-ramp stages
    then cost a few small matrix products per example instead of a backbone forward pass.
    """

    def __init__(self, pooled: Tensor, labels: Tensor | None, lengths: np.ndarray | None = None):
        self.pooled = pooled  # [examples, layers, d]
        self.labels = labels
        self._lengths = lengths

    @classmethod
    @torch.no_grad()
    def extract(cls, model: EarlyExitModel, source: TokenBatches, batch_size: int) -> CachedPooledFeatures:
        was_training = model.training
        model.eval()
        states, labels = [], []
        batches = evaluation_batches(source, batch_size)
        for indices in tqdm(batches, desc="cache pooled features", leave=False, disable=None):
            batch = source.batch(indices)
            hidden = [h.float() for h in model.encode(**batch.inputs)]  # pooled in fp32, as the heads pool
            states.append(model.pooled_states(hidden, batch.inputs["attention_mask"].bool()).transpose(0, 1))
            labels.append(batch.labels)
        model.train(was_training)
        inverse = input_order(batches)
        return cls(
            torch.cat(states)[inverse],
            torch.cat(labels)[inverse] if source.has_labels else None,
            source.lengths(),
        )

    def __len__(self) -> int:
        return len(self.pooled)

    def lengths(self) -> np.ndarray | None:
        """The token lengths of the examples the features came from: training draws the same length-grouped
        batches as from the text, so the cache stays an exact stand-in."""
        return self._lengths

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def batch(self, indices: Tensor) -> Batch:
        indices = indices.to(self.pooled.device)
        return Batch(
            {"pooled": self.pooled[indices].transpose(0, 1)},
            self.labels[indices] if self.labels is not None else None,
        )

    def exits(self, model: EarlyExitModel, batch: Batch, last_only: bool = False) -> AllExitsOutput:
        return model.exits_on_pooled(batch.inputs["pooled"], last_only)


def power_of_two_at_least(size: int) -> int:
    """The smallest power of two >= ``size``: the buckets batch sizes are grouped into (compiled shapes,
    serving step times), since compaction makes a new batch size at almost every exit."""
    return 1 << (size - 1).bit_length()


def evaluation_batches(
    source: TokenBatches | CachedPooledFeatures, batch_size: int, by_length: bool = True
) -> list[Tensor]:
    """Index batches for a pass over every example: sorted by length where lengths are known (and
    ``by_length``), so padding per batch stays small; put results back with :func:`input_order`."""
    lengths = source.lengths()
    if not by_length or lengths is None:
        return list(torch.arange(len(source)).split(batch_size))
    return list(torch.from_numpy(np.argsort(lengths, kind="stable")).split(batch_size))


def input_order(batches: list[Tensor]) -> Tensor:
    """The permutation that puts results concatenated batch by batch back in input order."""
    return torch.argsort(torch.cat(batches))


def length_grouped_order(
    lengths: np.ndarray, batch_size: int, generator: torch.Generator, megabatch: int = 50
) -> Tensor:
    """A training order that keeps batches of similar length, as transformers' ``group_by_length``: a random
    permutation cut into mega-batches of ``megabatch`` batches, each sorted by length (longest first)."""
    order = torch.randperm(len(lengths), generator=generator)
    chunks = order.split(batch_size * megabatch)
    return torch.cat([chunk[np.argsort(-lengths[chunk.numpy()], kind="stable")] for chunk in chunks])
