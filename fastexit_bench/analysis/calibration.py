"""Are an exit's confidences right? Expected calibration error, reliability curves, and temperature scaling.

Confidence-based exits trust a head's softmax: entropy measures how peaked it is, not whether its peak is
right, so an overconfident early head exits wrongly. Each exit's expected calibration error (ECE: the
gap between confidence and accuracy, averaged over ``BINS`` equal-width bins of the top probability,
weighted by examples) is reported with a bootstrap interval, and its reliability curve drawn.
``fit_temperatures`` fits one softmax temperature per exit by minimising the negative log-likelihood on a
labelled split (Guo et al., 2017); the ``*_calibrated`` policies decide on the scaled logits, fitted on the
split operating points are chosen on and never on the reported one.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from fastexit_bench.analysis.artifact import LayerOutputs
from fastexit_bench.analysis.uncertainty import Interval, interval_of

BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)


def _bins(confidence: np.ndarray) -> np.ndarray:
    return np.clip((confidence * BINS).astype(int), 0, BINS - 1)


def calibration_error(probabilities: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ECE on every resample of ``weights`` (``[resamples]``; a row of ones gives the plain ECE) for
    ``[examples, classes]`` probabilities."""
    confidence = probabilities.max(-1)
    correct = (probabilities.argmax(-1) == labels).astype(np.float64)
    members = np.zeros((len(labels), BINS))
    members[np.arange(len(labels)), _bins(confidence)] = 1.0
    weights = weights.astype(np.float64)
    count = weights @ members
    gap = weights @ (members * (correct - confidence)[:, None])  # per bin: sum of (right - confidence)
    return np.abs(gap).sum(1) / count.sum(1)


def calibration_interval(
    probabilities: np.ndarray, labels: np.ndarray, weights: np.ndarray
) -> tuple[float, Interval]:
    """``(ECE, its bootstrap interval)``."""
    plain = float(calibration_error(probabilities, labels, np.ones((1, len(labels))))[0])
    return plain, interval_of(calibration_error(probabilities, labels, weights))


PER_BIN = 50
"""Examples per bin of an equal-mass reliability diagram (fewer bins on small splits, at most ``BINS``)."""


def equal_mass_reliability(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean confidence and accuracy of bins holding equally many examples (about ``PER_BIN``, at most ``BINS``
    bins): a reliability diagram of a small split without near-empty bins whose accuracy is noise."""
    confidence = probabilities.max(-1)
    correct = probabilities.argmax(-1) == labels
    groups = np.array_split(
        np.argsort(confidence, kind="stable"), int(np.clip(len(labels) // PER_BIN, 1, BINS))
    )
    return np.array([confidence[g].mean() for g in groups]), np.array([correct[g].mean() for g in groups])


def fit_temperatures(outputs: LayerOutputs) -> np.ndarray:
    """One temperature per exit minimising the negative log-likelihood of ``outputs.labels`` (bounded to
    ``TEMPERATURE_RANGE``)."""
    labels = outputs.labels.astype(int)
    temperatures = []
    for logits in outputs.logits.astype(np.float64):

        def nll(log_t: float, logits: np.ndarray = logits) -> float:
            return -float(log_softmax(logits / np.exp(log_t), axis=-1)[np.arange(len(labels)), labels].mean())

        best = minimize_scalar(nll, bounds=np.log(TEMPERATURE_RANGE), method="bounded")
        temperatures.append(float(np.exp(best.x)))
    return np.asarray(temperatures)


def scaled(outputs: LayerOutputs, temperatures: np.ndarray) -> LayerOutputs:
    """``outputs`` with exit k's logits divided by its temperature (the first layers only, for the engine's
    layers-seen-so-far)."""
    divisor = temperatures[: outputs.num_layers, None, None]
    return LayerOutputs(outputs.logits / divisor, outputs.task, outputs.exit_scores, outputs.labels)
