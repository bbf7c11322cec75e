"""The compiled runtimes (torch.compile and ONNX Runtime per layer and head) answer exactly as eager PyTorch in
fp32: the same exits under every policy, the same predictions, through the engine and through
`evaluate`/`latency`; compiled bf16 within bf16's rounding of eager bf16, its engine exactly as its own outputs."""

import copy
import importlib.util

import numpy as np
import pytest
import torch

from fastexit_bench.analysis.artifact import ExitArtifact
from fastexit_bench.analysis.policies import POLICIES, resolve_policy
from fastexit_bench.cli import main
from fastexit_bench.errors import FastExitError
from fastexit_bench.execution import Execution, ExecutionConfig, resolve, running
from fastexit_bench.locations import Locations
from fastexit_bench.runtime.batches import TokenBatches
from fastexit_bench.runtime.compiled import bucketed, own_code, segments, with_runtime
from fastexit_bench.runtime.config import LatencyConfig
from fastexit_bench.runtime.engine import EarlyExitEngine
from fastexit_bench.runtime.latency import measure_latency, same_answers
from fastexit_bench.runtime.predict import predict
from tests.test_inference import model  # noqa: F401  (the fixture: tiny highway and branch models)
from tests.test_recipes import token_data
from tests.test_train_evaluate_cli import trained  # noqa: F401  (the fixture: a tiny trained BERxiT folder)

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
RUNTIMES = [  # (runtime, device)
    ("compile", "cpu"),
    ("cudagraphs", "cpu"),  # the bucketed shapes, compiled, without the graphs
    pytest.param(
        "onnxruntime",
        "cpu",
        marks=pytest.mark.skipif(
            not HAS_ORT, reason="needs the onnx extra: pip install 'fastexit-bench[onnx]'"
        ),
    ),
    pytest.param(
        "cudagraphs",
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    ),
]
ONE_POLICY_PER_INPUT = ("entropy", "learned", "static")  # reads logits, exit scores, nothing


@pytest.mark.parametrize(("runtime", "device"), RUNTIMES)
def test_every_policy_exits_where_eager_exits(model, runtime, device, tmp_path):  # noqa: F811
    model = copy.deepcopy(model).to(device)
    tokens = token_data(rows=24, seed=7)
    data = TokenBatches(tokens.dataset, tokens.tokenizer, device)
    eager = predict(model, data, "classification", batch_size=8)
    runner = with_runtime(model, Execution("fp32", "sdpa", runtime), tmp_path)
    outputs = predict(runner, data, "classification", batch_size=8)
    np.testing.assert_allclose(outputs.logits, eager.logits, rtol=1e-4, atol=1e-5)
    for name in POLICIES.names():  # every policy decides on these outputs as on eager's
        policy = resolve_policy(name)
        policy.fit(eager)
        for value in policy.grid(eager):
            np.testing.assert_array_equal(
                policy.exit_layers(outputs, value), policy.exit_layers(eager, value)
            )
    for name in ONE_POLICY_PER_INPUT:  # and the engine, stopping layer by layer, exits and answers the same
        policy = resolve_policy(name)
        for value in policy.grid(eager)[1::3]:
            expected = policy.exit_layers(eager, value)
            for batch_size, by_length in [(1, False), (5, True)]:
                out = EarlyExitEngine(runner, policy, value, "classification").run_source(
                    data, batch_size, by_length
                )
                np.testing.assert_array_equal(out.exit_layers, expected)
                assert same_answers(out.logits, eager, expected)


def test_each_segment_compiles_under_a_code_object_of_its_own(model):  # noqa: F811
    parts = segments(model)
    functions = {name: own_code(segment, name) for name, segment in parts.items()}
    assert len({f.__func__.__code__ for f in functions.values()}) == len(parts)  # one graph cache each
    hidden, additive = model.embed(torch.ones(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.long))
    with torch.no_grad():
        torch.testing.assert_close(functions["layer_1"](hidden, additive), parts["layer_1"](hidden, additive))


def test_bucketed_segments_see_few_shapes_and_answer_for_the_real_rows_only():
    seen = []

    def layer(hidden, additive):  # a stand-in segment: records its shapes, attends over unmasked tokens
        seen.append((tuple(hidden.shape), tuple(additive.shape)))
        weights = torch.softmax(additive[:, 0, 0, :], dim=-1)
        return hidden + (weights[..., None] * hidden).sum(1, keepdim=True)

    hidden = torch.randn(5, 19, 4)
    additive = torch.zeros(5, 1, 1, 19)
    additive[:, ..., 15:] = torch.finfo(torch.float32).min  # the last 4 tokens are padding
    out = bucketed(layer)(hidden, additive)
    assert seen == [((8, 32, 4), (8, 1, 1, 32))]  # batch to a power of two, tokens to a multiple of 16
    torch.testing.assert_close(out, layer(hidden, additive))
    logits = bucketed(lambda h, m: h.sum(1))(hidden, torch.ones(5, 19, dtype=torch.bool))
    assert logits.shape == (5, 4)  # a 2-D output keeps its width, whatever the padded tokens


@pytest.mark.skipif(not HAS_ORT, reason="needs the onnx extra: pip install 'fastexit-bench[onnx]'")
def test_onnx_graphs_are_exported_once_per_weights(model, tmp_path):  # noqa: F811
    execution = Execution("fp32", "sdpa", "onnxruntime")
    with_runtime(model, execution, tmp_path)
    (folder,) = tmp_path.iterdir()
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert {"layer_3.onnx", "step_3.onnx", "scorer_0.onnx"} <= set(stamps)
    with_runtime(model, execution, tmp_path)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps


def test_compiled_bf16_rounds_like_eager_bf16_and_exits_where_its_own_outputs_say(model, tmp_path):  # noqa: F811
    execution = Execution("bf16", "eager", "compile")
    model = copy.deepcopy(model)
    tokens = token_data(rows=24, seed=7)
    data = TokenBatches(tokens.dataset, tokens.tokenizer, "cpu")
    runner = with_runtime(model, execution, tmp_path)
    with running(model.config, execution, torch.device("cpu"), inference=model.layers):
        eager = predict(model, data, "classification", batch_size=8)
        outputs = predict(runner, data, "classification", batch_size=8)
        np.testing.assert_allclose(outputs.logits, eager.logits, rtol=0.05, atol=0.05)  # bf16: ~3 digits
        for name in ONE_POLICY_PER_INPUT:
            policy = resolve_policy(name)
            for value in policy.grid(outputs)[1::3]:
                expected = policy.exit_layers(outputs, value)
                out = EarlyExitEngine(runner, policy, value, "classification").run_source(data, 5, True)
                np.testing.assert_array_equal(out.exit_layers, expected)
                assert same_answers(out.logits, outputs, expected)


def test_onnxruntime_refuses_low_precision_and_auto_resolves_to_fp32(model, tmp_path):  # noqa: F811
    with pytest.raises(FastExitError, match="--precision fp32"):
        with_runtime(model, Execution("bf16", "eager", "onnxruntime"), tmp_path)
    cpu = torch.device("cpu")
    assert resolve(ExecutionConfig(runtime="onnxruntime"), cpu, cpu_bf16=True).precision == "fp32"
    assert resolve(ExecutionConfig(runtime="compile"), cpu, cpu_bf16=True).precision == "bf16"


@pytest.mark.skipif(not HAS_ORT, reason="needs the onnx extra: pip install 'fastexit-bench[onnx]'")
def test_evaluate_and_latency_record_their_runtime(trained, resources, tmp_path):  # noqa: F811
    common = ["--max-eval", "8", "--resources", str(resources), "--device", "cpu", "--precision", "fp32"]
    artefacts = {}
    for runtime in ("eager", "onnxruntime"):
        out = tmp_path / f"{runtime}.npz"
        assert main(["evaluate", str(trained), *common, "--runtime", runtime, "--out", str(out)]) == 0
        artefacts[runtime] = ExitArtifact.load(out)
    assert artefacts["onnxruntime"].metadata.execution == Execution("fp32", "sdpa", "onnxruntime")
    np.testing.assert_allclose(
        artefacts["onnxruntime"].predictions.logits,
        artefacts["eager"].predictions.logits,
        rtol=1e-4,
        atol=1e-5,
    )
    assert (trained / "onnx").is_dir()  # the graphs are kept beside the model
    timing = measure_latency(
        trained,
        [("learned=0.5", "learned", 0.5)],
        "validation",
        LatencyConfig(examples=8, batch_sizes=(1, 4), repeats=1),
        threads=torch.get_num_threads(),
        execution=ExecutionConfig("fp32", runtime="onnxruntime"),
        where=Locations(resources=str(resources), device="cpu"),
        config={},
    )
    assert timing.execution.runtime == "onnxruntime" and [r.batch_size for r in timing.rows] == [1, 4]
