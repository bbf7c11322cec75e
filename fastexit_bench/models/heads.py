"""Exit heads. Each maps one layer's hidden states to logits (or one regression value).

Shapes: ``hidden`` is ``[batch, seq, d]``; ``mask`` is ``[batch, seq]`` with True on real tokens.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from fastexit_bench.analysis.head_kinds import BRANCH_WIDTH, HEAD_KINDS
from fastexit_bench.pooling import POOLINGS
from fastexit_bench.registry import Registry

HEADS: Registry[type[nn.Module]] = Registry("head")
"""Exit head classes, each registered by its ``name`` (``@HEADS.add``), which is also its kind's in
``analysis.head_kinds`` (what code without torch knows of it)."""


def pool_tokens(hidden: Tensor, mask: Tensor, pooling: str) -> Tensor:
    """``[batch, d]`` from ``[batch, seq, d]``: the first token (``cls``) or the mean over real tokens (``mean``)."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


@HEADS.add
class HighwayHead(nn.Module):
    """DeeBERT off-ramp: pool the tokens ([CLS] as published, or their mean on mean-pooling backbones; see
    ``fastexit_bench.pooling``), pooler (Linear d->d, tanh), dropout, Linear d->outputs.

    The pooler starts from the backbone's pooler when ``pooler`` is given (DeeBERT copies it);
    ``shared_pooler`` is a pooler module several heads use as one (PABEE).
    """

    name = "highway"
    kind = HEAD_KINDS.get(name)  # what torch-free code knows of it: it pools; its FLOPs
    pools = kind.pools
    shares_pooler = False

    def __init__(
        self,
        hidden_size: int,
        num_outputs: int,
        dropout: float = 0.1,
        pooler: nn.Linear | None = None,
        shared_pooler: nn.Linear | None = None,
        pooling: str = "cls",
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r} is not one of {POOLINGS}")
        self.pooling = pooling
        if shared_pooler is not None:
            self.pooler = shared_pooler
        else:
            self.pooler = nn.Linear(hidden_size, hidden_size)
            if pooler is not None:
                self.pooler.load_state_dict(pooler.state_dict())
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_outputs)

    def features(self, hidden: Tensor, mask: Tensor) -> Tensor:
        """The pooled output ``[batch, d]`` the classifier reads (BERxiT's exit module reads it too)."""
        return torch.tanh(self.pooler(pool_tokens(hidden, mask, self.pooling)))

    def forward(self, hidden: Tensor, mask: Tensor) -> Tensor:
        return self.classifier(self.dropout(self.features(hidden, mask)))


@HEADS.add
class SharedPoolerHead(HighwayHead):
    """PABEE's exits: one pooler shared by every layer (from the backbone's), then dropout and a Linear
    classifier per layer (JetRunner/PABEE ``pabee/modeling_albert.py``: ``self.pooler`` and
    ``self.classifiers``)."""

    name = "shared-pooler"
    kind = HEAD_KINDS.get(name)
    shares_pooler = True


class BranchAttention(nn.Module):
    """Multi-head self-attention over all tokens at a small width, padding masked (FastBERT, UER-style)."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(width, width)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        batch, seq, width = x.shape

        def split(t: Tensor) -> Tensor:
            return t.view(batch, seq, self.heads, self.head_dim).transpose(1, 2)

        scores = split(self.query(x)) @ split(self.key(x)).transpose(-1, -2) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~mask[:, None, None, :], torch.finfo(scores.dtype).min)
        context = self.dropout(scores.softmax(-1)) @ split(self.value(x))
        return self.output(context.transpose(1, 2).reshape(batch, seq, width))


@HEADS.add
class BranchHead(nn.Module):
    """FastBERT branch classifier: Linear d->128 + tanh, 2-head self-attention at 128 over all tokens
    (dropout on its attention probabilities, the encoder's 0.1 in FastBERT's code), [CLS], Linear 128->128
    + tanh, Linear 128->outputs."""

    name = "branch"
    kind = HEAD_KINDS.get(name)
    pools = kind.pools
    shares_pooler = False

    def __init__(
        self,
        hidden_size: int,
        num_outputs: int,
        dropout: float = 0.1,
        width: int = BRANCH_WIDTH,
        heads: int = 2,
        **_: object,
    ):
        super().__init__()
        self.pooling = "cls"
        self.reduce = nn.Linear(hidden_size, width)
        self.attention = BranchAttention(width, heads, dropout)
        self.dense = nn.Linear(width, width)
        self.classifier = nn.Linear(width, num_outputs)

    def forward(self, hidden: Tensor, mask: Tensor) -> Tensor:
        reduced = torch.tanh(self.reduce(hidden))
        cls = self.attention(reduced, mask)[:, 0]
        return self.classifier(torch.tanh(self.dense(cls)))


class ExitScorer(nn.Module):
    """BERxiT learning-to-exit module: one linear layer, shared by all layers, that predicts from a layer's
    off-ramp pooled output (castorini/berxit ``modeling_highway_bert.py``: ``lte_input = highway_exit[1]``)
    whether that layer's prediction is correct (its sigmoid is the certainty)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.score = nn.Linear(hidden_size, 1)

    def forward(self, features: Tensor) -> Tensor:
        """Logit of P(correct) from ``[batch, d]`` features, shape ``[batch]``."""
        return self.score(features).squeeze(-1)
