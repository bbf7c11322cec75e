"""GLUE-style task metrics, computed with scikit-learn and SciPy (values in [0, 1], not percent; always
defined: Matthews and the correlations are 0 for constant predictions)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from fastexit_bench.registry import Registry


def _correlation(fn: Callable[[np.ndarray, np.ndarray], float]) -> Callable[[np.ndarray, np.ndarray], float]:
    """A correlation that is 0, not undefined, when either side is constant (a model that predicts one value
    shows no relation to the labels; a NaN would poison every score computed from it)."""
    return lambda p, y: 0.0 if np.ptp(p) == 0 or np.ptp(y) == 0 else fn(p, y)


@dataclass(frozen=True)
class Metric:
    """A task metric: ``fn(predictions, labels)``; predictions are class ids or regression values."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool = True


METRICS: Registry[Metric] = Registry("metric")
for _metric in (
    Metric("accuracy", lambda p, y: skm.accuracy_score(y, p)),
    Metric("f1", lambda p, y: skm.f1_score(y, p, pos_label=1, average="binary", zero_division=0.0)),
    Metric("matthews", lambda p, y: skm.matthews_corrcoef(y, p)),
    Metric("pearson", _correlation(lambda p, y: stats.pearsonr(p, y).statistic)),
    Metric("spearman", _correlation(lambda p, y: stats.spearmanr(p, y).statistic)),
):
    METRICS.register(_metric.name, _metric)


def direction(name: str) -> float:
    """+1 for a metric where higher is better, -1 where lower is: multiply before comparing."""
    return 1.0 if METRICS.get(name).higher_is_better else -1.0


def compute_metrics(names: tuple[str, ...], predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every metric in ``names`` for one set of predictions."""
    return {name: float(METRICS.get(name).fn(np.asarray(predictions), np.asarray(labels))) for name in names}
