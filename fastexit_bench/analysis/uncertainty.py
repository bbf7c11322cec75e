"""How much a metric measured on n examples could move with another sample of n: a seeded bootstrap.

Every resample is a row of multinomial counts over the examples (``bootstrap_weights``), drawn once per
artefact, so every policy, value and exit of one artefact is judged on the same resamples (differences
between them are paired). Classification metrics come from per-resample confusion matrices and Pearson
from weighted moments, both as one matrix product; Spearman re-ranks each resample. The interval is the
percentile interval at ``LEVEL``; ``se`` is the resamples' standard deviation (used to combine the noise of
two models measured on the same examples into an interval for their difference).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0
CHUNK = 200  # resamples per matrix product (bounds memory on large splits)


@dataclass(frozen=True)
class Interval:
    """A metric's bootstrap interval and standard error (same units as the metric)."""

    low: float
    high: float
    se: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def bootstrap_weights(examples: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``[resamples, examples]`` counts: how often each example is drawn in each resample."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(examples, np.full(examples, 1.0 / examples), size=resamples).astype(np.float32)


def _confusion(weights: np.ndarray, predictions: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """``[resamples, classes, classes]`` confusion counts (rows: labels, columns: predictions)."""
    cells = np.zeros((len(labels), classes * classes), dtype=np.float32)
    cells[np.arange(len(labels)), labels * classes + predictions] = 1.0
    return (
        np.concatenate([w @ cells for w in np.split(weights, range(CHUNK, len(weights), CHUNK))])
        .reshape(-1, classes, classes)
        .astype(np.float64)
    )


def _from_confusion(metric: str, confusion: np.ndarray) -> np.ndarray:
    total = confusion.sum(axis=(1, 2))
    correct = np.trace(confusion, axis1=1, axis2=2)
    if metric == "accuracy":
        return correct / total
    if metric == "f1":  # binary, positive class 1, 0 when there are no positives at all (as scikit-learn)
        tp, fp, fn = confusion[:, 1, 1], confusion[:, 0, 1], confusion[:, 1, 0]
        denominator = 2 * tp + fp + fn
        return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    if metric == "matthews":  # scikit-learn's multi-class formula, 0 when undefined
        true, predicted = confusion.sum(axis=2), confusion.sum(axis=1)
        cov_tp = correct * total - (true * predicted).sum(1)
        cov_pp = total**2 - (predicted**2).sum(1)
        cov_tt = total**2 - (true**2).sum(1)
        denominator = np.sqrt(cov_tt * cov_pp)
        return np.divide(cov_tp, denominator, out=np.zeros_like(cov_tp), where=denominator > 0)
    raise ValueError(metric)


def _pearson(weights: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    n = weights.sum(1)
    mx, my = weights @ x / n, weights @ y / n
    cov = weights @ (x * y) / n - mx * my
    vx, vy = weights @ (x * x) / n - mx**2, weights @ (y * y) / n - my**2
    denominator = np.sqrt(np.clip(vx, 0, None) * np.clip(vy, 0, None))
    return np.divide(cov, denominator, out=np.zeros_like(cov), where=denominator > 1e-12)


def resampled(metric: str, predictions: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``metric`` on every resample of ``weights`` (``[resamples]``); rows of ones give the plain metric."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if metric in ("accuracy", "f1", "matthews"):
        classes = int(max(predictions.max(), labels.max())) + 1
        return _from_confusion(
            metric, _confusion(weights, predictions.astype(int), labels.astype(int), classes)
        )
    if metric == "pearson":
        return _pearson(weights.astype(np.float64), predictions.astype(np.float64), labels.astype(np.float64))
    if metric == "spearman":
        values = []
        for counts in weights.astype(int):
            drawn = np.repeat(np.arange(len(labels)), counts)
            x, y = predictions[drawn], labels[drawn]
            values.append(0.0 if np.ptp(x) == 0 or np.ptp(y) == 0 else stats.spearmanr(x, y).statistic)
        return np.asarray(values)
    raise ValueError(f"no bootstrap for metric {metric!r}")


def interval_of(samples: np.ndarray) -> Interval:
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Interval(float(low), float(high), float(samples.std(ddof=1)))


def metric_interval(
    metric: str, predictions: np.ndarray, labels: np.ndarray, weights: np.ndarray
) -> Interval:
    """The bootstrap interval of ``metric`` for one set of predictions."""
    return interval_of(resampled(metric, predictions, labels, weights))


def difference_interval(
    metric: str, first: np.ndarray, second: np.ndarray, labels: np.ndarray, weights: np.ndarray
) -> Interval:
    """The paired bootstrap interval of ``metric(first) - metric(second)`` on the same examples."""
    return interval_of(resampled(metric, first, labels, weights) - resampled(metric, second, labels, weights))


def combined_se(*standard_errors: float) -> float:
    """The standard error of a difference of independent estimates (an upper bound when they are positively
    correlated, as two models scored on the same examples are)."""
    return float(np.sqrt(np.sum(np.square(standard_errors))))
