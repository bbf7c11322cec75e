"""What code without torch knows about each exit head: whether it reads one pooled vector per example, and its
matrix-product count. A head class (``models.heads``) names its kind; adding a head is its class and its kind
here. Artefacts record the kind's name as ``architecture["head"]``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fastexit_bench.errors import FastExitError
from fastexit_bench.registry import Registry

EXTERNAL = "external"
"""The kind of the heads of outputs imported from another framework (``analysis.interchange``): no class here."""
BRANCH_WIDTH = 128  # FastBERT branch classifier width (models.heads.BranchHead)

HeadCost = Callable[[np.ndarray, int, int, np.ndarray, bool], tuple[np.ndarray, int]]
"""``(n, hidden size, outputs, pooling MACs, count attention products) -> (MACs before the label projection,
MACs of the label projection)`` for one example of ``n`` tokens."""


@dataclass(frozen=True)
class HeadKind:
    """``pools``: the head reads one pooled vector per example (so the exit's pooling applies, and cached
    per-layer vectors can stand in for the tokens); ``cost``: its analytic MACs (:data:`HeadCost`)."""

    name: str
    pools: bool
    cost: HeadCost


def pooled_head_cost(
    n: np.ndarray, d: int, outputs: int, pooling: np.ndarray, attention: bool
) -> tuple[np.ndarray, int]:
    """Pooling, a d x d pooler, then the label projection (DeeBERT's off-ramp, PABEE's shared pooler)."""
    return d * d + pooling + np.zeros_like(n), d * outputs


def branch_head_cost(
    n: np.ndarray, d: int, outputs: int, pooling: np.ndarray, attention: bool
) -> tuple[np.ndarray, int]:
    """FastBERT's branch: d -> w over every token, self-attention at width w (Q, K, V, O; its scores and
    context where ``attention``), a w x w dense on [CLS], then the label projection."""
    w = BRANCH_WIDTH
    return n * d * w + 4 * n * w * w + w * w + (2 * n * n * w if attention else 0), w * outputs


def external_head_cost(
    n: np.ndarray, d: int, outputs: int, pooling: np.ndarray, attention: bool
) -> tuple[np.ndarray, int]:
    """A head of outputs imported from another framework (``analysis.interchange``): its FLOPs come with them."""
    raise FastExitError("an imported model's FLOPs come with its artefact; there is no analytic count")


HEAD_KINDS: Registry[HeadKind] = Registry("head")
HEAD_KINDS.add(HeadKind("highway", pools=True, cost=pooled_head_cost))
HEAD_KINDS.add(HeadKind("shared-pooler", pools=True, cost=pooled_head_cost))
HEAD_KINDS.add(HeadKind("branch", pools=False, cost=branch_head_cost))
HEAD_KINDS.add(HeadKind(EXTERNAL, pools=False, cost=external_head_cost))
