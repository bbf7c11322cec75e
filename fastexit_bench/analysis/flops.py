"""FLOPs of an early-exit model's parts as functions of sequence length, and per-example expected cost.

Counts are multiply-accumulates (MACs), the unit fvcore reports as "flops"; FLOPs = 2 x MACs.
``fastexit_bench.models.tracing.measure_fvcore`` traces each component on its own (embeddings, one layer, one head, the
learned-exit scorer): tracing a whole early-exit model would follow one branch and drop the heads
that only feed the exit decision. Eager attention is traced, and a handle for
``aten::scaled_dot_product_attention`` is registered too, so attention matmuls are never skipped;
the ops fvcore does not count (element-wise adds, softmax, GELU) are reported. Counts are exact
quadratics in the sequence length, so each component is traced at three lengths and checked at a fourth.
:class:`AnalyticFlops` derives matmul counts from the architecture's sizes; it is the fallback for
artefacts without fvcore counts and is labelled ``analytic`` in results.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from fastexit_bench.analysis.artifact import ArtifactMetadata
from fastexit_bench.analysis.head_kinds import HEAD_KINDS


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
        every head or scorer evaluated on the way (``reads`` as in :class:`~fastexit_bench.analysis.policies.ExitPolicy`)."""
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

    def speedup(self, exit_layers: np.ndarray, lengths: np.ndarray, reads: str, num_layers: int) -> float:
        """The speed-up FLOPs predict: the plain model's mean cost over the early-exit model's at these exits."""
        return float(
            self.full_depth(num_layers, lengths).mean() / self.per_example(exit_layers, lengths, reads).mean()
        )


class AnalyticFlops(ComponentFlops):
    """Matrix-product counts from the architecture recorded in an evaluation artefact."""

    source = "analytic"
    attention_products = True  # Q K^T and attention x V: the products that Linear-only counts leave out
    label_projection = True

    def __init__(self, architecture: dict[str, Any]):
        self.d = architecture["hidden_size"]
        self.f = architecture["intermediate_size"]
        self.e = architecture.get("embedding_size", self.d)
        self.outputs = architecture["num_outputs"]
        self.head_kind = HEAD_KINDS.get(architecture["head"])  # an unknown head is an error, not a guess
        self.scorer_reads_pooled = architecture.get("scorer_input", "cls") == "pooled"
        self.mean_pooling = architecture.get("pooling", "cls") == "mean"

    def embeddings(self, n: np.ndarray) -> np.ndarray:
        return n * self.e * self.d if self.e != self.d else np.zeros_like(n)  # ALBERT's projection

    def layer(self, n: np.ndarray) -> np.ndarray:
        d, f = self.d, self.f
        products = 2 * n * n * d if self.attention_products else 0  # scores + context
        return 4 * n * d * d + 2 * n * d * f + products  # Q, K, V, O; feed-forward

    def head(self, n: np.ndarray) -> np.ndarray:
        cost, labels = self.head_kind.cost(n, self.d, self.outputs, self.pooling(n), self.attention_products)
        return cost + (labels if self.label_projection else 0) + np.zeros_like(n)

    def pooling(self, n: np.ndarray) -> np.ndarray:
        """The token mean of a mean-pooling head: one accumulate per token state, and n to count the tokens;
        [CLS] is free."""
        return n * (self.d + 1) if self.mean_pooling else np.zeros_like(n)

    def scorer(self, n: np.ndarray) -> np.ndarray:
        pooler = (
            self.d * self.d + self.pooling(n) if self.scorer_reads_pooled else 0
        )  # the exit's pooling, again
        return pooler + self.d + np.zeros_like(n)


class FastBertConventionFlops(AnalyticFlops):
    """FastBERT's published convention: Linear layers only, every input padded to ``length`` tokens, and
    the classifier's label projection left out, which puts BERT-base at FastBERT's 21,785,247,744 FLOPs.
    For numbers set beside the paper's; the fvcore counts (attention included, true lengths) are the
    suite's own measure."""

    source = "fastbert-convention"
    attention_products = label_projection = False

    def __init__(self, architecture: dict[str, Any], length: int = 128):
        super().__init__(architecture)
        self.length = length

    def per_example(self, exit_layers: np.ndarray, lengths: np.ndarray, reads: str) -> np.ndarray:
        return super().per_example(exit_layers, np.full(np.shape(lengths), float(self.length)), reads)


class PolynomialFlops(ComponentFlops):
    """Per-component MACs as ``a n^2 + b n + c`` (what fvcore measured), stored in artefact metadata."""

    def __init__(self, coefficients: dict[str, list[float]], source: str, skipped_ops: dict[str, list[str]]):
        self.coefficients, self.source, self.skipped_ops = coefficients, source, skipped_ops

    def _at(self, component: str, n: np.ndarray) -> np.ndarray:
        return np.polyval(self.coefficients[component], np.asarray(n, dtype=float))

    def embeddings(self, n: np.ndarray) -> np.ndarray:
        return self._at("embeddings", n)

    def layer(self, n: np.ndarray) -> np.ndarray:
        return self._at("layer", n)

    def head(self, n: np.ndarray) -> np.ndarray:
        return self._at("head", n)

    def scorer(self, n: np.ndarray) -> np.ndarray:
        return self._at("scorer", n)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "coefficients": self.coefficients, "skipped_ops": self.skipped_ops}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolynomialFlops:
        return cls(data["coefficients"], data["source"], data["skipped_ops"])


def fastbert_convention(architecture: dict[str, Any]) -> FastBertConventionFlops | None:
    """FastBERT's convention for a model whose sizes are recorded; None for outputs imported without them."""
    return FastBertConventionFlops(architecture) if "hidden_size" in architecture else None


def flops_for(metadata: ArtifactMetadata) -> ComponentFlops:
    """The artefact's fvcore counts when it has them, else the analytic fallback."""
    if metadata.flops is not None:
        return PolynomialFlops.from_dict(metadata.flops)
    return AnalyticFlops(metadata.architecture)
