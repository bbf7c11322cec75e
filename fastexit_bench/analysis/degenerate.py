"""Is a model better than knowing nothing? A model whose full depth is within noise of always predicting
the majority class (the mean, for regression) has no accuracy to trade for speed: its speed-ups "within N
points" are not wins, and tables flag it instead of showing them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fastexit_bench.analysis.artifact import LayerOutputs
from fastexit_bench.analysis.uncertainty import Interval, difference_interval
from fastexit_bench.metrics import compute_metrics, direction


def majority_predictions(outputs: LayerOutputs) -> np.ndarray:
    """What a model that knows nothing but the label distribution predicts: the most frequent class, or the
    mean value for regression."""
    labels = outputs.labels
    if outputs.task == "regression":
        return np.full(len(labels), float(np.mean(labels)))
    return np.full(len(labels), np.bincount(labels.astype(int)).argmax())


@dataclass(frozen=True)
class ModelCheck:
    """The full-depth metric against the majority baseline's on the same examples.

    Attributes:
        metric: the headline metric.
        full_depth / majority: their values.
        gain: the paired bootstrap interval of ``full_depth - majority`` (metric units, sign-adjusted so that
            positive is better).
        degenerate: the interval of the gain reaches 0: no evidence the model beats the majority baseline
            (derived from ``gain``; written for readers of the record).
    """

    metric: str
    full_depth: float
    majority: float
    gain: Interval
    degenerate: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "degenerate", self.gain.low <= 0)

    def describe(self) -> str:
        return (
            f"full-depth {self.metric} {self.full_depth:.3f} is within noise of always predicting the "
            f"majority class ({self.majority:.3f}; 95% interval of the gain {100 * self.gain.low:+.1f} to "
            f"{100 * self.gain.high:+.1f} points): its speed-ups are not wins"
        )


def check_model(outputs: LayerOutputs, metric: str, weights: np.ndarray) -> ModelCheck:
    """:class:`ModelCheck` of the last exit on ``outputs`` (the bootstrap ``weights`` of its examples)."""
    full = outputs.predictions()[-1]
    majority = majority_predictions(outputs)
    sign = direction(metric)
    gain = difference_interval(metric, full, majority, outputs.labels, weights)
    if sign < 0:
        gain = Interval(-gain.high, -gain.low, gain.se)
    values = [compute_metrics((metric,), p, outputs.labels)[metric] for p in (full, majority)]
    return ModelCheck(metric, values[0], values[1], gain)
