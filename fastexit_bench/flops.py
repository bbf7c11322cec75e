"""FLOPs of an early-exit model's parts as functions of sequence length, and per-example expected cost.

Counts are multiply-accumulates, the unit fvcore reports as "flops". :class:`AnalyticFlops` derives
them from the architecture's sizes (matrix products only: projections, attention scores and
context, feed-forward, heads); it is the fallback until fvcore-measured counts are available and is
always labelled ``analytic`` in results.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

BRANCH_WIDTH = 128  # FastBERT branch classifier width (see fastexit_bench.model.heads.BranchHead)


class ComponentFlops(ABC):
    """FLOPs of one example of ``n`` tokens through each part of the model."""

    source: str

    @abstractmethod
    def embeddings(self, n: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def layer(self, n: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def head(self, n: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def scorer(self, n: np.ndarray) -> np.ndarray: ...

    def per_example(self, exit_layers: np.ndarray, lengths: np.ndarray, reads: str) -> np.ndarray:
        """Cost of each example exiting after ``exit_layers`` (1-based): embeddings, the layers run, and
        every head or scorer evaluated on the way (``reads`` as in :class:`~fastexit_bench.policies.ExitPolicy`)."""
        n, k = np.asarray(lengths, dtype=float), np.asarray(exit_layers, dtype=float)
        cost = self.embeddings(n) + k * self.layer(n)
        if reads == "logits":
            return cost + k * self.head(n)
        if reads == "exit_scores":
            return cost + k * self.scorer(n) + self.head(n)
        return cost + self.head(n)

    def full_depth(self, num_layers: int, lengths: np.ndarray) -> np.ndarray:
        """The plain model: every layer, one classifier at the end."""
        return self.per_example(np.full(len(lengths), num_layers), lengths, "nothing")


class AnalyticFlops(ComponentFlops):
    """Matrix-product counts from the architecture recorded in an evaluation artefact."""

    source = "analytic"

    def __init__(self, architecture: dict[str, Any]):
        self.d = architecture["hidden_size"]
        self.f = architecture["intermediate_size"]
        self.e = architecture.get("embedding_size", self.d)
        self.outputs = architecture["num_outputs"]
        self.head_type = architecture["head"]

    def embeddings(self, n: np.ndarray) -> np.ndarray:
        return n * self.e * self.d if self.e != self.d else np.zeros_like(n)  # ALBERT's projection

    def layer(self, n: np.ndarray) -> np.ndarray:
        d, f = self.d, self.f
        return 4 * n * d * d + 2 * n * n * d + 2 * n * d * f  # Q, K, V, O; scores + context; feed-forward

    def head(self, n: np.ndarray) -> np.ndarray:
        d, c, w = self.d, self.outputs, BRANCH_WIDTH
        if self.head_type == "branch":
            return n * d * w + 4 * n * w * w + 2 * n * n * w + w * w + w * c
        return d * d + d * c + np.zeros_like(n)

    def scorer(self, n: np.ndarray) -> np.ndarray:
        return self.d + np.zeros_like(n)
