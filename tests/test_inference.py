"""The early-exit engine stops for real and agrees with the policy sweep on every built-in policy."""

import copy

import numpy as np
import pytest
import torch

from fastexit_bench.analysis.policies import POLICIES, resolve_policy
from fastexit_bench.execution import Execution, running
from fastexit_bench.models.early_exit import EarlyExitModel
from fastexit_bench.models.tracing import measure_fvcore
from fastexit_bench.runtime.engine import EarlyExitEngine
from fastexit_bench.runtime.latency import realized_vs_predicted
from fastexit_bench.runtime.predict import predict
from tests.test_early_exit_model import tiny_backbone
from tests.test_recipes import token_data


@pytest.fixture(scope="module", params=["highway", "branch"])
def model(request):
    torch.manual_seed(5)
    scorer_input = "pooled" if request.param == "highway" else "cls"  # branch heads have no pooled output
    model = EarlyExitModel(
        tiny_backbone(4), request.param, num_outputs=2, learned_exit=True, scorer_input=scorer_input
    ).eval()
    with torch.no_grad():  # spread the exits' confidences so that every policy exits at several depths
        for k, head in enumerate(model.heads):
            head.classifier.weight.mul_(3.0 * (k + 1))
        model.exit_scorer.score.weight.mul_(20.0)
    return model


@pytest.mark.parametrize("name", POLICIES.names())
@pytest.mark.parametrize(("batch_size", "bucketed"), [(1, False), (4, False), (5, True)])
def test_engine_matches_the_sweep(model, name, batch_size, bucketed):
    data = token_data(rows=24, seed=7)
    saved = outputs = predict(model, data, "classification", batch_size=8)
    policy = resolve_policy(name)
    policy.fit(outputs)  # the calibrated policies' temperatures; the engine decides with the same ones
    depths = set()
    for value in policy.grid(outputs)[::2]:
        expected = policy.exit_layers(outputs, value)
        depths.update(expected.tolist())
        out = EarlyExitEngine(model, policy, value, "classification").run_source(data, batch_size, bucketed)
        np.testing.assert_array_equal(out.exit_layers, expected)
        chosen = saved.logits[expected - 1, np.arange(len(expected))]
        np.testing.assert_allclose(out.logits.numpy(), chosen, rtol=1e-4, atol=1e-5)
    assert len(depths) >= 2  # the values swept make examples stop at different layers


def test_compaction_runs_later_layers_only_on_remaining_examples(model):
    data = token_data(rows=8, seed=1)
    batch = data.batch(torch.arange(8))
    seen = []
    hook = model.layers[3].register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    try:
        out = EarlyExitEngine(model, resolve_policy("static"), 2, "classification").run(**batch.inputs)
    finally:
        hook.remove()
    assert (out.exit_layers == 2).all() and seen == []  # nobody reached layer 4
    hook = model.layers[3].register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    try:
        out = EarlyExitEngine(model, resolve_policy("max_prob"), 0.8, "classification").run(**batch.inputs)
    finally:
        hook.remove()
    assert seen == ([int((out.exit_layers == 4).sum())] if (out.exit_layers == 4).any() else [])


def test_realized_vs_predicted_times_each_point_against_full_depth(model):
    data = token_data(rows=12, seed=3)
    outputs = predict(model, data, "classification", batch_size=8)
    entropy = resolve_policy("entropy")
    value = float(np.median(entropy.grid(outputs)))
    rows = realized_vs_predicted(
        model,
        data,
        "classification",
        [("entropy=mid", entropy, value)],
        [1, 4],
        repeats=2,
        device=torch.device("cpu"),
    )
    assert [(r.setting, r.batch_size) for r in rows] == [("entropy=mid", 1), ("entropy=mid", 4)]
    flops, lengths = measure_fvcore(model), data.lengths()
    exits = entropy.exit_layers(outputs, value)
    predicted = flops.full_depth(4, lengths).mean() / flops.per_example(exits, lengths, "logits").mean()
    for row in rows:
        assert row.predicted_speedup == pytest.approx(predicted)
        assert row.realized_speedup == pytest.approx(row.full_depth["total_s"] / row.early_exit["total_s"])
        assert row.mean_exit_layer == pytest.approx(exits.mean())


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize(
    ("device", "execution"),
    [
        ("cpu", Execution("bf16", "eager")),
        pytest.param("cuda", Execution("fp32", "sdpa"), marks=CUDA),
        pytest.param("cuda", Execution("bf16", "sdpa"), marks=CUDA),
    ],
)
@pytest.mark.parametrize("name", POLICIES.names())
def test_engine_matches_the_sweep_at_each_precision(model, name, device, execution):
    """Evaluated and timed at one precision on one device, the engine's exits equal the sweep's (reduced
    precision's rounding included)."""
    device = torch.device(device)
    model = copy.deepcopy(model).to(device)
    data = token_data(rows=24, seed=7)
    data.device = device
    with running(model.config, execution, device):
        saved = predict(model, data, "classification", batch_size=8)
        policy = resolve_policy(name)
        policy.fit(saved)
        for value in policy.grid(saved)[::2]:
            for batch_size, bucketed in ((1, False), (5, True)):
                out = EarlyExitEngine(model, policy, value, "classification").run_source(
                    data, batch_size, bucketed
                )
                np.testing.assert_array_equal(out.exit_layers, policy.exit_layers(saved, value))


@pytest.mark.parametrize("name", ["entropy", "patience", "learned", "oracle"])
def test_a_model_with_other_weights_replays_the_recorded_exits(model, name):
    """Replay: a model of the same architecture with fresh random weights exits where the recorded outputs
    say, in the engine and in the latency harness's check, though its own heads would decide otherwise."""
    data = token_data(rows=16, seed=9)
    recorded = predict(model, data, "classification", batch_size=8)
    torch.manual_seed(11)
    other = EarlyExitModel(
        tiny_backbone(4), model.head_name, num_outputs=2, learned_exit=True, scorer_input=model.scorer_input
    ).eval()
    policy = resolve_policy(name)
    value = float(np.median(policy.grid(recorded)))
    expected = policy.exit_layers(recorded, value)
    for batch_size, bucketed in [(1, False), (5, True)]:
        out = EarlyExitEngine(other, policy, value, "classification").run_source(
            data, batch_size, bucketed, replay=recorded
        )
        np.testing.assert_array_equal(out.exit_layers, expected)
    rows = realized_vs_predicted(
        other,
        data,
        "classification",
        [("mid", policy, value)],
        [4],
        repeats=1,
        device=torch.device("cpu"),
        replay=recorded,
    )
    assert rows[0].mean_exit_layer == pytest.approx(expected.mean())
