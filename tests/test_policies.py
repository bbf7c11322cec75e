"""Built-in exit policies decide as their papers specify, only from layers up to the current one."""

import numpy as np
import pytest

from fastexit_bench.analysis.policies import POLICIES, LayerOutputs, resolve_policy
from fastexit_bench.errors import PolicyError, UnknownNameError


def confident(classes: int, label: int, margin: float) -> np.ndarray:
    row = np.zeros(classes)
    row[label] = margin
    return row


# 4 layers x 3 examples x 2 classes. Example 0 is confident from layer 2; example 1 says class 1 at layers
# 1-2, then confidently class 0; example 2 is uniform at layer 1, then alternates with small margins.
LOGITS = np.array(
    [
        [confident(2, 0, 0.1), confident(2, 1, 0.1), confident(2, 0, 0.0)],
        [confident(2, 0, 5.0), confident(2, 1, 0.2), confident(2, 1, 0.5)],
        [confident(2, 0, 5.0), confident(2, 0, 3.0), confident(2, 0, 0.1)],
        [confident(2, 0, 6.0), confident(2, 0, 4.0), confident(2, 1, 0.1)],
    ]
)
LABELS = np.array([0, 0, 1])
OUTPUTS = LayerOutputs(
    LOGITS,
    "classification",
    exit_scores=np.array([[-3, 2, -3], [3, 2, -3], [3, 2, -3], [3, 2, -3]], float),
    labels=LABELS,
)


def fitted(name):
    """A policy ready to decide: the calibrated ones fit their temperatures on these labelled outputs."""
    policy = resolve_policy(name)
    policy.fit(OUTPUTS)
    return policy


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("entropy", 0.1, [2, 4, 4]),  # entropy of p=(.993,.007) is ~0.04 nats
        ("entropy", 0.7, [1, 1, 1]),  # every distribution over 2 classes has entropy <= ln 2 ~ 0.693
        ("speed", 0.1, [2, 4, 4]),
        ("max_prob", 0.9, [2, 3, 4]),
        ("patience", 1, [2, 2, 4]),  # same argmax as the layer before
        ("max_prob", 0.95, [2, 3, 4]),
        ("patience", 2, [3, 4, 4]),
        ("learned", 0.8, [2, 1, 4]),  # sigmoid(2) = 0.88
        ("static", 3, [3, 3, 3]),
        ("oracle", 0, [1, 3, 2]),
    ],
)
def test_builtin_exit_layers(name, value, expected):
    assert resolve_policy(name).exit_layers(OUTPUTS, value).tolist() == expected


def test_entropy_at_uniform_is_not_below_ln2():
    assert (
        resolve_policy("entropy").exit_layers(OUTPUTS, np.log(2))[2] == 2
    )  # example 2 is uniform at layer 1


def test_patience_for_regression_counts_small_changes():
    values = np.array([[1.0, 0.0], [1.05, 1.0], [1.08, 2.0], [3.0, 2.05]])[..., None]
    outputs = LayerOutputs(values, "regression")
    assert resolve_policy("patience").exit_layers(outputs, 2).tolist() == [3, 4]
    with pytest.raises(PolicyError, match="needs class probabilities and the task is regression"):
        resolve_policy("entropy").exit_layers(outputs, 0.1)


@pytest.mark.parametrize("name", [n for n in POLICIES.names() if n != "oracle"])
def test_decisions_at_layer_k_ignore_later_layers(name):
    policy = fitted(name)
    value = policy.grid(OUTPUTS)[len(policy.grid(OUTPUTS)) // 2]
    base = policy.exit_mask(OUTPUTS, value)
    for k in range(1, 4):
        changed = LayerOutputs(OUTPUTS.logits.copy(), "classification", OUTPUTS.exit_scores.copy(), LABELS)
        changed.logits[k:] = np.random.default_rng(k).normal(size=changed.logits[k:].shape) * 9
        changed.exit_scores[k:] *= -1
        np.testing.assert_array_equal(policy.exit_mask(changed, value)[:k], base[:k])


def test_sweep_exit_layers_equal_one_value_at_a_time():
    for name in POLICIES.names():
        policy = fitted(name)
        grid = policy.grid(OUTPUTS)
        for value, layers in zip(grid, policy.sweep_exit_layers(OUTPUTS, grid)):
            np.testing.assert_array_equal(layers, policy.exit_layers(OUTPUTS, value))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("patience", -1, "patience must be a whole number >= 1, got -1"),
        ("patience", 1.5, "patience must be a whole number >= 1"),
        ("speed", 1.2, "speed 1.2 is outside \\[0.0, 1.0\\]"),
        ("max_prob", -0.1, "outside"),
        ("entropy", -0.5, "outside"),
        ("static", 5, "layer must be a whole number in 1..4"),
    ],
)
def test_bad_parameters_fail_with_one_line(name, value, message):
    with pytest.raises(PolicyError, match=message):
        resolve_policy(name).exit_layers(OUTPUTS, value)


def test_unknown_and_unloadable_policies():
    with pytest.raises(UnknownNameError, match="Did you mean entropy"):
        resolve_policy("entropi")
    with pytest.raises(PolicyError, match="cannot load policy 'no_such_pkg.mod:Thing'"):
        resolve_policy("no_such_pkg.mod:Thing")
    with pytest.raises(PolicyError, match="cannot load policy 'numpy:NoSuchClass'"):
        resolve_policy("numpy:NoSuchClass")
    with pytest.raises(PolicyError, match="is not a subclass of fastexit_bench.analysis.policies.ExitPolicy"):
        resolve_policy("numpy:ndarray")
    no_scores = LayerOutputs(LOGITS, "classification")
    with pytest.raises(PolicyError, match="train it with --recipe berxit"):
        resolve_policy("learned").exit_layers(no_scores, 0.5)
