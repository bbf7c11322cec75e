"""Risk-controlled operating points (Learn-then-Test): a threshold chosen on the selection split that keeps its
promise on new data with a stated probability, where "the fastest value within N points on dev" is only hoped
to.

The risk of a value is the share of examples its exits get wrong that full depth gets right (the harm rate):
the accuracy drop against full depth is never larger, since examples an early exit gets right and full depth
wrong only lower it. For each value the null hypothesis "harm rate > δ" gets an exact binomial p-value from
the selection sample; values are tested in a fixed sequence from the most conservative (deepest mean exit,
measured without labels) to the most aggressive at level ε, stopping at the first that is not rejected. Every
value rejected before that has harm rate <= δ with probability >= 1 - ε over the selection sample (Angelopoulos
et al., "Learn then Test", 2021: fixed-sequence testing controls the family-wise error), so the fastest of
them is the choice. numpy and scipy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from fastexit_bench.analysis.artifact import LayerOutputs
from fastexit_bench.analysis.policies import ExitPolicy
from fastexit_bench.errors import FastExitError


def harms(outputs: LayerOutputs, exits: np.ndarray) -> np.ndarray:
    """Per example: the exit's prediction is wrong and full depth's right (classification with labels)."""
    if outputs.task == "regression" or outputs.labels is None:
        raise FastExitError(
            "risk-controlled points need labelled classification outputs (a per-example harm)"
        )
    predictions = outputs.predictions()
    at_exit = predictions[exits - 1, np.arange(len(exits))]
    return (at_exit != outputs.labels) & (predictions[-1] == outputs.labels)


def binomial_p_value(harm_count: int, examples: int, delta: float) -> float:
    """P(Binomial(examples, delta) <= harm_count): the p-value of "harm rate > delta" after ``harm_count``
    harms in ``examples`` (exact; a rate above delta would make so few harms rarer still)."""
    return float(binom.cdf(harm_count, examples, delta))


@dataclass(frozen=True)
class Tested:
    """One value in the testing sequence: its mean exit layer, harms and p-value."""

    value: float
    mean_exit_layer: float
    harms: int
    p_value: float


@dataclass(frozen=True)
class RiskChoice:
    """The risk-controlled value (None: not even the most conservative value passed, so full depth) and the
    sequence as tested."""

    value: float | None
    tested: tuple[Tested, ...]


@dataclass(frozen=True)
class Candidate:
    """One value as the rules see it on a sample: its mean exit layer (no labels needed), its harms and its
    accuracy drop against full depth (points)."""

    value: float
    mean_exit_layer: float
    harms: int
    drop_points: float


def candidates(outputs: LayerOutputs, policy: ExitPolicy, values: Sequence[float]) -> list[Candidate]:
    """Every value of ``values`` on ``outputs`` (labelled classification)."""
    predictions, labels = outputs.predictions(), outputs.labels
    full = float(np.mean(predictions[-1] == labels))
    out = []
    for value in values:
        exits = policy.exit_layers(outputs, value)
        accuracy = float(np.mean(predictions[exits - 1, np.arange(len(exits))] == labels))
        out.append(
            Candidate(
                float(value), float(exits.mean()), int(harms(outputs, exits).sum()), 100 * (full - accuracy)
            )
        )
    return out


def risk_controlled(
    values: Sequence[Candidate], examples: int, delta_points: float, epsilon: float
) -> RiskChoice:
    """The fastest value whose harm rate is <= ``delta_points``/100 with probability >= 1 - ``epsilon`` over
    the ``examples`` of the sample (fixed-sequence testing, deepest mean exit first)."""
    tested, chosen = [], None
    for candidate in sorted(values, key=lambda c: -c.mean_exit_layer):
        p = binomial_p_value(candidate.harms, examples, delta_points / 100)
        tested.append(Tested(candidate.value, candidate.mean_exit_layer, candidate.harms, p))
        if p > epsilon:
            break
        chosen = candidate.value
    return RiskChoice(chosen, tuple(tested))


def point_estimate(values: Sequence[Candidate], delta_points: float) -> float | None:
    """The papers' rule on the same sample: the value with the shallowest mean exit whose accuracy drop
    against full depth is <= ``delta_points`` (None: none is)."""
    within = [c for c in values if c.drop_points <= delta_points + 1e-9]
    return min(within, key=lambda c: c.mean_exit_layer).value if within else None
