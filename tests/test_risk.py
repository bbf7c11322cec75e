"""Risk-controlled operating points: the binomial p-value, the harm count and fixed-sequence testing."""

from fractions import Fraction
from math import comb

import numpy as np
import pandas as pd
import pytest

from fastexit_bench.analysis.artifact import LayerOutputs
from fastexit_bench.analysis.operating_points import OperatingPointSpec, choose
from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.analysis.risk import binomial_p_value, candidates, harms, point_estimate, risk_controlled
from fastexit_bench.errors import FastExitError


def brute_force_p(harm_count: int, examples: int, delta: Fraction) -> float:
    return float(
        sum(comb(examples, k) * delta**k * (1 - delta) ** (examples - k) for k in range(harm_count + 1))
    )


@pytest.mark.parametrize(
    ("harm_count", "examples", "delta"), [(0, 50, "1/10"), (3, 40, "1/20"), (17, 200, "1/10")]
)
def test_the_p_value_is_the_binomial_lower_tail(harm_count, examples, delta):
    assert binomial_p_value(harm_count, examples, float(Fraction(delta))) == pytest.approx(
        brute_force_p(harm_count, examples, Fraction(delta)), rel=1e-9
    )


def layered(examples: int = 1000, harm_share: tuple[float, ...] = (0.3, 0.02, 0.0)) -> LayerOutputs:
    """Four exits on two classes: full depth always right; exit k wrong on the first harm_share[k] of examples."""
    labels = np.zeros(examples, dtype=int)
    logits = np.zeros((4, examples, 2), dtype=np.float32)
    logits[..., 0] = 1.0
    for k, share in enumerate(harm_share):
        logits[k, : int(share * examples), 1] = 2.0
    return LayerOutputs(logits, "classification", labels=labels)


def test_harms_count_exits_wrong_where_full_depth_is_right():
    outputs = layered(10, (0.5, 0.0, 0.0))
    assert harms(outputs, np.ones(10, dtype=int)).sum() == 5
    assert harms(outputs, np.full(10, 4)).sum() == 0
    with pytest.raises(FastExitError, match="classification"):
        harms(LayerOutputs(outputs.logits, "classification"), np.ones(10, dtype=int))  # no labels


def test_fixed_sequence_testing_stops_at_the_first_value_it_cannot_certify():
    values = candidates(layered(), resolve_policy("static"), [1, 2, 3, 4])
    choice = risk_controlled(values, 1000, delta_points=5, epsilon=0.1)
    assert choice.value == 2  # 2% harms certified under 5%; 30% at layer 1 is not
    assert [t.value for t in choice.tested] == [4, 3, 2, 1] and choice.tested[-1].p_value > 0.1
    assert [t.harms for t in choice.tested] == [0, 0, 20, 300]
    tight = risk_controlled(values, 1000, delta_points=1, epsilon=0.1)
    assert tight.value == 3 and len(tight.tested) == 3  # 2% is not under 1%: testing stops there
    assert risk_controlled(values, 1000, delta_points=5, epsilon=1e-30).value is None
    assert point_estimate(values, delta_points=5) == 2
    assert point_estimate(values, delta_points=2) == 2  # the point rule takes a 2.0-point drop at 2 points
    assert point_estimate(values, delta_points=1) == 3


def test_the_sweep_selection_gets_a_risk_controlled_point_per_policy():
    outputs, static = layered(), resolve_policy("static")
    accuracy = [0.7, 0.98, 1.0, 1.0]
    dev = pd.DataFrame(
        {
            "policy": "static",
            "value": [1.0, 2.0, 3.0, 4.0],
            "accuracy": accuracy,
            "speedup": [4.0, 2.0, 1.33, 1.0],
        }
    )
    spec = OperatingPointSpec(max_drop=(), risk=(5.0, 1.0), risk_epsilon=0.1)
    points = choose(dev, "accuracy", spec, outputs, {"static": static})
    risk = points[points.target.str.startswith("risk")].set_index("setting")
    assert dict(risk.value) == {"static, dev risk<=5pt": 2.0, "static, dev risk<=1pt": 3.0}
    assert risk.loc["static, dev risk<=5pt", "dev_accuracy"] == 0.98
    assert not choose(dev, "accuracy", spec).target.str.startswith("risk").any()  # no outputs: none
    assert (
        not choose(dev.rename(columns={"accuracy": "f1"}), "f1", spec, outputs, {"static": static})
        .target.str.startswith("risk")
        .any()
    )
