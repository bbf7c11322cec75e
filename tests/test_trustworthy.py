"""Reporting that can be believed: a ranking score defined and bounded for every model (degenerate fixtures),
bootstrap intervals that agree with the metrics, and models no better than the majority class flagged."""

import numpy as np
import pandas as pd
import pytest

from fastexit_bench.analysis.artifact import TEXT_CHARS, ArtifactMetadata, ExitArtifact, LayerOutputs
from fastexit_bench.analysis.calibration import BINS, calibration_interval
from fastexit_bench.analysis.degenerate import check_model
from fastexit_bench.analysis.policies import DEFAULT_POLICIES, REFERENCE_POLICIES, resolve_policy
from fastexit_bench.analysis.sweep import scores, sweep
from fastexit_bench.analysis.uncertainty import (
    bootstrap_weights,
    difference_interval,
    metric_interval,
    resampled,
)
from fastexit_bench.errors import PolicyError
from fastexit_bench.locations import ResolvedBackbone
from fastexit_bench.metrics import compute_metrics
from fastexit_bench.reporting.tables import exits_table

EXAMPLES = 300


def make(logits, labels, task="classification", metrics=("accuracy",)):
    layers = logits.shape[0]
    arch = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_layers": layers,
        "head": "highway",
        "num_outputs": logits.shape[-1],
        "embedding_size": 32,
    }
    meta = ArtifactMetadata(
        dataset="sst2",
        split="validation",
        task=task,
        metrics=list(metrics),
        recipe="deebert",
        backbone=ResolvedBackbone("tiny", "tiny", "test"),
        seed=0,
        architecture=arch,
    )
    outputs = LayerOutputs(logits.astype(np.float32), task, labels=labels)
    return ExitArtifact(outputs, np.full(len(labels), 20), meta)


def one_hot_logits(predicted, scale=5.0, classes=2):
    logits = np.zeros((*predicted.shape, classes))
    np.put_along_axis(logits, predicted[..., None], scale, axis=-1)
    return logits


RNG = np.random.default_rng(0)
LABELS = (RNG.random(EXAMPLES) < 0.6).astype(int)  # 60 % class 1


def good_last_layer(layers=4):
    """Layers 1..L-1 at chance, the last right 90 % of the time."""
    predicted = RNG.integers(0, 2, (layers, EXAMPLES))
    predicted[-1] = np.where(RNG.random(EXAMPLES) < 0.9, LABELS, 1 - LABELS)
    return predicted


FIXTURES = {
    "constant predictions": lambda: make(one_hot_logits(np.ones((4, EXAMPLES), int)), LABELS),
    "untrained heads": lambda: make(
        np.concatenate([RNG.normal(0, 1e-3, (3, EXAMPLES, 2)), one_hot_logits(good_last_layer()[-1:])]),
        LABELS,
    ),
    "always exits at layer 1": lambda: make(one_hot_logits(good_last_layer(), scale=50.0), LABELS),
    "static flat at chance": lambda: make(one_hot_logits(RNG.integers(0, 2, (4, EXAMPLES))), LABELS),
    "single layer": lambda: make(one_hot_logits(good_last_layer(1)), LABELS),
    "regression, constant predictions": lambda: make(
        np.ones((4, EXAMPLES, 1)), RNG.random(EXAMPLES), "regression", ("pearson", "spearman")
    ),
}


@pytest.mark.parametrize("name", list(FIXTURES))
def test_the_ranking_score_is_finite_and_bounded_for_degenerate_models(name):
    art = FIXTURES[name]()
    names = dict.fromkeys([*DEFAULT_POLICIES, *REFERENCE_POLICIES])
    policies = [
        resolve_policy(n)
        for n in names
        if art.metadata.task == "classification" or n in ("patience", *REFERENCE_POLICIES)
    ]
    policies = [p for p in policies if p.reads != "exit_scores"]
    for policy in policies:
        policy.fit(art.predictions)
    table = sweep(art, policies)
    ranking = scores(table, art.metadata.headline_metric).set_index("policy")
    assert np.isfinite(table.select_dtypes("number").to_numpy()).all()
    assert np.isfinite(ranking.gain_vs_static).all() and (ranking.gain_vs_static.abs() <= 200).all()
    assert ranking.loc["static", "gain_vs_static"] == 0.0
    assert ranking.loc["oracle", "gain_vs_static"] >= 0.0


def test_a_policy_whose_heads_never_reach_its_thresholds_is_flagged():
    ranking = scores(
        sweep(FIXTURES["untrained heads"](), [resolve_policy(n) for n in ("max_prob", "static")]), "accuracy"
    ).set_index("policy")
    assert not ranking.loc["max_prob", "exits_early"] and ranking.loc["static", "exits_early"]
    always = scores(
        sweep(
            FIXTURES["always exits at layer 1"](), [resolve_policy("max_prob")] + [resolve_policy("static")]
        ),
        "accuracy",
    ).set_index("policy")
    assert always.loc["max_prob", "exits_early"]


@pytest.mark.parametrize(
    "name, degenerate",
    [
        ("constant predictions", True),
        ("static flat at chance", True),
        ("untrained heads", False),
        ("single layer", False),
        ("regression, constant predictions", True),
    ],
)
def test_models_within_noise_of_the_majority_class_are_flagged(name, degenerate):
    art = FIXTURES[name]()
    check = check_model(art.predictions, art.metadata.headline_metric, bootstrap_weights(EXAMPLES))
    assert check.degenerate is degenerate
    assert "within noise of always predicting the majority class" in check.describe()


@pytest.mark.parametrize("metric", ["accuracy", "f1", "matthews", "pearson", "spearman"])
def test_bootstrap_resamples_compute_the_same_metric(metric):
    rng = np.random.default_rng(3)
    if metric in ("pearson", "spearman"):
        labels = rng.random(120)
        predictions = labels + rng.normal(0, 0.3, 120)
    else:
        classes = 2 if metric == "f1" else 3
        labels = rng.integers(0, classes, 120)
        predictions = np.where(rng.random(120) < 0.7, labels, rng.integers(0, classes, 120))
    weights = bootstrap_weights(120, resamples=50, seed=1)
    direct = []
    for counts in weights.astype(int):
        drawn = np.repeat(np.arange(120), counts)
        direct.append(compute_metrics((metric,), predictions[drawn], labels[drawn])[metric])
    np.testing.assert_allclose(resampled(metric, predictions, labels, weights), direct, rtol=1e-9, atol=1e-12)
    interval = metric_interval(metric, predictions, labels, bootstrap_weights(120))
    assert interval.contains(compute_metrics((metric,), predictions, labels)[metric]) and interval.se > 0


def test_intervals_are_seeded_and_a_model_against_itself_differs_by_nothing():
    predictions, labels = LABELS.copy(), LABELS
    predictions[:40] = 1 - predictions[:40]
    first = metric_interval("accuracy", predictions, labels, bootstrap_weights(EXAMPLES))
    assert first == metric_interval("accuracy", predictions, labels, bootstrap_weights(EXAMPLES))
    same = difference_interval("accuracy", predictions, predictions, labels, bootstrap_weights(EXAMPLES))
    assert (same.low, same.high, same.se) == (0.0, 0.0, 0.0)


def test_calibration_error_and_reliability_match_a_direct_computation():
    rng = np.random.default_rng(5)
    probabilities = rng.dirichlet(np.ones(3), 400)
    labels = np.array([rng.choice(3, p=p) for p in probabilities])  # calibrated by construction
    confidence, right = probabilities.max(1), probabilities.argmax(1) == labels
    bins = np.minimum((confidence * BINS).astype(int), BINS - 1)
    direct = sum(
        abs(right[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).mean()
        for b in np.unique(bins)
    )
    error, interval = calibration_interval(probabilities, labels, bootstrap_weights(400))
    assert error == pytest.approx(direct) and interval.low <= error + 1e-12 <= interval.high + 1e-12
    overconfident = np.where(np.arange(3) == probabilities.argmax(1)[:, None], 0.99, 0.005)
    assert calibration_interval(overconfident, labels, bootstrap_weights(400))[0] > 2 * error


def test_calibrated_policies_fit_on_dev_and_decide_on_scaled_logits():
    """Heads that are right 90 % of the time but hardly confident (logits 0.3 apart): uncalibrated max_prob
    never passes 0.9; after fitting a temperature per exit on dev it does."""
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 2, 400)
    right = rng.random((3, 400)) < 0.9
    predicted = np.where(right, labels, 1 - labels)
    outputs = LayerOutputs(
        one_hot_logits(predicted, scale=0.3).astype(np.float32), "classification", labels=labels
    )
    plain, calibrated = resolve_policy("max_prob"), resolve_policy("max_prob_calibrated")
    with pytest.raises(PolicyError, match="is fitted on labelled dev outputs first"):
        calibrated.exit_layers(outputs, 0.8)
    calibrated.fit(outputs)
    assert np.all(calibrated.temperatures < 0.2)  # sharpened
    assert plain.exit_layers(outputs, 0.8).mean() == 3.0 and calibrated.exit_layers(outputs, 0.8).mean() < 1.5
    seen = LayerOutputs(outputs.logits[:2], "classification")  # the engine decides on the layers seen so far
    assert calibrated.exit_mask(seen, 0.8).shape == (2, 400)


def test_which_inputs_exit_where_from_the_artifact(tmp_path):
    art = FIXTURES["always exits at layer 1"]()
    art.texts = np.array([f"text number {i} | with a pipe " + "x" * 200 for i in range(EXAMPLES)])
    art.save(tmp_path / "a.npz")
    loaded = ExitArtifact.load(tmp_path / "a.npz")
    assert len(loaded.texts[0]) == TEXT_CHARS and loaded.texts[3].startswith("text number 3")
    points = pd.DataFrame(
        [
            {
                "dataset": "sst2",
                "split": "validation",
                "recipe": "deebert",
                "seed": 0,
                "setting": f"entropy={v}",
                "policy": "entropy",
                "value": v,
                "mean_exit_layer": m,
            }
            for v, m in ((0.01, 3.0), (0.6, 1.5))
        ]
    )
    table = exits_table(points, [loaded])
    assert table["exit layer"].tolist() == [1, 2, 3, 4] and set(table.model) == {"deebert: entropy=0.6"}
    exits = resolve_policy("entropy").exit_layers(loaded.predictions, 0.6)
    assert table.examples.tolist() == np.bincount(exits, minlength=5)[1:].tolist()
    first = table.iloc[0]
    right = loaded.predictions.predictions()[0][exits == 1] == LABELS[exits == 1]
    assert first["accuracy [95% CI]"].startswith(f"{right.mean():.3f} [")
    assert first["examples exiting here"].startswith("“text number 0 / with a pipe")  # no | to break a table


def test_the_reliability_diagram_bins_hold_equally_many_examples():
    from fastexit_bench.analysis.calibration import PER_BIN, equal_mass_reliability

    rng = np.random.default_rng(7)
    for examples in (40, 212, 5000):
        probabilities = rng.dirichlet(np.ones(2), examples)
        labels = rng.integers(0, 2, examples)
        confidence, accuracy = equal_mass_reliability(probabilities, labels)
        assert len(confidence) == min(max(examples // PER_BIN, 1), BINS) and np.all(np.diff(confidence) >= 0)
        assert np.all((accuracy >= 0) & (accuracy <= 1))
