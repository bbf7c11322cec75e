"""Exit heads. Each maps one layer's hidden states to logits (or one regression value).

Shapes: ``hidden`` is ``[batch, seq, d]``; ``mask`` is ``[batch, seq]`` with True on real tokens.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from fastexit_bench.registry import Registry

HEADS: Registry[type[nn.Module]] = Registry("head")


class HighwayHead(nn.Module):
    """DeeBERT off-ramp: pooler (Linear d->d, tanh) on [CLS], dropout, Linear d->outputs.

    The pooler starts from the backbone's pooler when ``pooler`` is given (DeeBERT copies it).
    """

    reads_cls_only = True

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float = 0.1, pooler: nn.Linear | None = None):
        super().__init__()
        self.pooler = nn.Linear(hidden_size, hidden_size)
        if pooler is not None:
            self.pooler.load_state_dict(pooler.state_dict())
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_outputs)

    def forward(self, hidden: Tensor, mask: Tensor) -> Tensor:
        return self.classifier(self.dropout(torch.tanh(self.pooler(hidden[:, 0]))))


class BranchAttention(nn.Module):
    """Multi-head self-attention over all tokens at a small width, padding masked (FastBERT, UER-style)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))
        self.output = nn.Linear(width, width)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        batch, seq, width = x.shape

        def split(t: Tensor) -> Tensor:
            return t.view(batch, seq, self.heads, self.head_dim).transpose(1, 2)

        scores = split(self.query(x)) @ split(self.key(x)).transpose(-1, -2) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~mask[:, None, None, :], torch.finfo(scores.dtype).min)
        context = scores.softmax(-1) @ split(self.value(x))
        return self.output(context.transpose(1, 2).reshape(batch, seq, width))


class BranchHead(nn.Module):
    """FastBERT branch classifier: Linear d->128 + tanh, 2-head self-attention at 128 over all tokens,
    [CLS], Linear 128->128 + tanh, Linear 128->outputs."""

    reads_cls_only = False

    def __init__(self, hidden_size: int, num_outputs: int, width: int = 128, heads: int = 2, **_: object):
        super().__init__()
        self.reduce = nn.Linear(hidden_size, width)
        self.attention = BranchAttention(width, heads)
        self.dense = nn.Linear(width, width)
        self.classifier = nn.Linear(width, num_outputs)

    def forward(self, hidden: Tensor, mask: Tensor) -> Tensor:
        reduced = torch.tanh(self.reduce(hidden))
        cls = self.attention(reduced, mask)[:, 0]
        return self.classifier(torch.tanh(self.dense(cls)))


class ExitScorer(nn.Module):
    """BERxiT learning-to-exit module: one linear layer, shared by all layers, that predicts from a
    layer's [CLS] whether that layer's prediction is correct (its sigmoid is the certainty)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.score = nn.Linear(hidden_size, 1)

    def forward(self, hidden: Tensor) -> Tensor:
        """Logit of P(correct), shape ``[batch]``."""
        return self.score(hidden[:, 0]).squeeze(-1)


HEADS.register("highway", HighwayHead)
HEADS.register("branch", BranchHead)
