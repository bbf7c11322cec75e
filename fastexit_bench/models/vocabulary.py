"""Training on the rows of the word-embedding matrix that a run's data can produce.

``me5-small`` keeps 96M of its 118M parameters in a 250k-token multilingual vocabulary (``minilm-l6``: 11.7M of
22.7M in 30k tokens), while a batch touches a few hundred rows. With the whole matrix trainable, every step
computes a dense gradient for it, clips it, and AdamW reads and writes four copies of it. Trimming keeps only
the rows of the token ids in the run's train and dev data (plus padding): a lookup table maps the original
ids onto them, so inputs and tokenizers do not change and the model computes the same logits for every input
of those ids. Rows outside the data never receive a gradient; under AdamW a full-vocabulary run changes them
only by decoupled weight decay, ``w <- w * (1 - lr_t * wd)`` at every step, and :class:`TrimmedEmbedding`
keeps that product so :func:`restore_vocabulary` writes them back decayed: the saved model is the
full-vocabulary run's, up to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastexit_bench.errors import TrainingError


class TrimmedEmbedding(nn.Module):
    """A word-embedding table that holds only ``kept`` rows (ascending token ids) of ``full``.

    ``untouched_decay`` is the product of AdamW's decoupled weight-decay factors applied so far to the rows
    left out (:meth:`decay_untouched`); the full table is kept aside, out of ``state_dict``, for
    :func:`restore_vocabulary`.
    """

    def __init__(self, full: nn.Embedding, kept: Tensor):
        super().__init__()
        self.full = [
            full
        ]  # a list: not a submodule, so its 96M parameters stay out of parameters() and state_dict
        self.register_buffer("kept_ids", kept.clone())
        index = torch.full((full.num_embeddings,), -1, dtype=torch.long)
        index[kept] = torch.arange(len(kept))
        self.register_buffer("row_of_id", index)
        self.weight = nn.Parameter(full.weight.detach()[kept].clone())
        self.padding_idx = None if full.padding_idx is None else int(index[full.padding_idx])
        self.register_buffer("untouched_decay", torch.ones((), dtype=torch.float64))

    def forward(self, input_ids: Tensor) -> Tensor:
        rows = self.row_of_id[input_ids]
        if (rows < 0).any():
            missing = sorted(set(input_ids[rows < 0].tolist()))[:5]
            raise TrainingError(
                f"token ids {missing} are not in the trimmed vocabulary (built from the run's train "
                "and dev data); train with the full vocabulary (--vocabulary full)"
            )
        return F.embedding(rows, self.weight, self.padding_idx)

    def decay_untouched(self, lr: float, weight_decay: float) -> None:
        """Record one AdamW step's decoupled weight decay on the rows left out."""
        self.untouched_decay *= 1.0 - lr * weight_decay


def data_token_ids(token_id_arrays: Iterable[np.ndarray], padding_idx: int | None) -> Tensor:
    """The ascending, unique token ids of the data, with the padding id (batches are padded with it)."""
    ids = np.unique(np.concatenate([np.asarray(a, dtype=np.int64).ravel() for a in token_id_arrays]))
    if padding_idx is not None:
        ids = np.union1d(ids, [padding_idx])
    return torch.from_numpy(ids)


def trim_vocabulary(embeddings: nn.Module, kept: Tensor) -> TrimmedEmbedding:
    """Replace ``embeddings.word_embeddings`` by its ``kept`` rows; returns the trimmed table."""
    full = embeddings.word_embeddings
    if not isinstance(full, nn.Embedding):
        raise TrainingError(f"cannot trim a {type(full).__name__} vocabulary; train with --vocabulary full")
    embeddings.word_embeddings = TrimmedEmbedding(full, kept.to(full.weight.device))
    return embeddings.word_embeddings


@torch.no_grad()
def restore_vocabulary(embeddings: nn.Module) -> None:
    """Put the full table back: the trained rows in their places, the others decayed as AdamW would have."""
    trimmed = embeddings.word_embeddings
    if not isinstance(trimmed, TrimmedEmbedding):
        return
    full = trimmed.full[0]
    decay = float(trimmed.untouched_decay)
    if decay != 1.0:
        full.weight.mul_(decay)
    full.weight[trimmed.kept_ids] = trimmed.weight.to(full.weight.dtype)
    embeddings.word_embeddings = full
