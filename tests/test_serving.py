"""Serving under load: every scheduler answers each query with the sweep's exit and prediction, whatever the
arrival pattern; the load generator's scenarios and rate search; `serve-bench` end to end."""

import json

import numpy as np
import pytest

from fastexit_bench.analysis.artifact import ExitArtifact, LayerOutputs
from fastexit_bench.analysis.policies import POLICIES, resolve_policy
from fastexit_bench.cli import main
from fastexit_bench.runtime.predict import predict
from fastexit_bench.serving.bench import in_turns, median_run, query_examples
from fastexit_bench.serving.loadgen import Served, max_rate_under_bound, poisson_arrivals, serve
from fastexit_bench.serving.record import SCHEDULERS, ServingRecord
from fastexit_bench.serving.schedulers import LayerPool, make_scheduler
from tests.test_inference import model  # noqa: F401 (the fixture: tiny highway and branch models)
from tests.test_recipes import token_data
from tests.test_train_evaluate_cli import TRAIN

SERVABLE = [name for name in POLICIES.names() if name != "oracle"]  # the oracle reads labels
ANSWERING = [name for name in SCHEDULERS if name != "layer-pool-deadline"]
"""Without a deadline layer-pool-deadline is layer-pool; its forced exits have a test of their own."""


def arrival_patterns(queries: int) -> dict[str, np.ndarray | None]:
    return {
        "one at a time": None,
        "all at once": np.zeros(queries),
        "poisson fast": poisson_arrivals(queries, 20000.0, seed=1),
        "poisson slow": poisson_arrivals(queries, 2000.0, seed=2),
    }


@pytest.mark.parametrize("name", SERVABLE)
def test_every_scheduler_answers_as_the_sweep_under_any_arrivals(model, name):  # noqa: F811
    data = token_data(rows=24, seed=7)
    outputs = predict(model, data, "classification", batch_size=8)
    policy = resolve_policy(name)
    policy.fit(outputs)
    examples = query_examples(len(data), 40, seed=3)
    depths = set()
    for value in policy.grid(outputs)[::2]:
        exits = policy.exit_layers(outputs, value)
        depths.update(exits.tolist())
        for scheduler_name in ANSWERING:
            expected = np.full_like(exits, model.num_layers) if scheduler_name == "full-depth" else exits
            predictions = outputs.predictions()[expected - 1, np.arange(len(expected))]
            for pattern, arrivals in arrival_patterns(len(examples)).items():
                scheduler = make_scheduler(
                    scheduler_name, model, data, examples, "classification", policy, value, max_batch=5
                )
                served = serve(scheduler, len(examples), arrivals)
                where = f"{scheduler_name}, {pattern}, value {value}"
                np.testing.assert_array_equal(served.exit_layers, expected[examples], err_msg=where)
                np.testing.assert_array_equal(served.predictions, predictions[examples], err_msg=where)
                assert (served.answered >= served.arrivals).all()
    assert len(depths) >= 2


def test_a_replaying_scheduler_exits_where_the_recorded_outputs_say(model):  # noqa: F811
    data = token_data(rows=24, seed=7)
    own = predict(model, data, "classification", batch_size=8)
    recorded = LayerOutputs(  # another model's outputs: exits the model's own heads would not give
        np.random.default_rng(0).normal(size=own.logits.shape).astype(np.float32), "classification"
    )
    policy = resolve_policy("entropy")
    examples = query_examples(len(data), 40, seed=3)
    value = float(np.median(policy.grid(recorded)))
    expected = policy.exit_layers(recorded, value)[examples]
    assert not np.array_equal(expected, policy.exit_layers(own, value)[examples])
    for scheduler_name in ANSWERING:
        if scheduler_name == "full-depth":
            continue
        scheduler = make_scheduler(scheduler_name, model, data, examples, "classification", policy, value, 5)
        served = serve(scheduler.replaying(recorded), len(examples), np.zeros(len(examples)))
        np.testing.assert_array_equal(served.exit_layers, expected, err_msg=scheduler_name)
        answers = recorded.predictions()[expected - 1, examples]  # the recorded model's, not the heads'
        np.testing.assert_array_equal(served.predictions, answers, err_msg=scheduler_name)


@pytest.mark.parametrize("name", ["entropy", "static"])  # the last head's logits at hand, or computed then
def test_a_deadline_forces_late_queries_out_with_their_last_heads_answer(model, name):  # noqa: F811
    data = token_data(rows=24, seed=7)
    outputs = predict(model, data, "classification", batch_size=8)
    policy = resolve_policy(name)
    value = policy.grid(outputs)[0] if name == "entropy" else model.num_layers  # exits late, or at the end
    examples = query_examples(len(data), 30, seed=3)
    scheduler = make_scheduler(
        "layer-pool-deadline", model, data, examples, "classification", policy, value, 5, deadline_s=0.0
    )
    served = serve(scheduler, len(examples), np.zeros(len(examples)))
    # with a deadline of 0 every query is late by layer 2: each leaves after layer 1, forced unless its
    # policy let it out there anyway, with layer 1's answer
    exits = policy.exit_layers(outputs, value)[examples]
    np.testing.assert_array_equal(served.exit_layers, np.ones(len(examples)))
    np.testing.assert_array_equal(served.forced, exits > 1)
    np.testing.assert_array_equal(served.predictions, outputs.predictions()[0, examples])
    assert served.forced.any()


def test_a_deadline_forces_late_queries_in_every_pool_and_runs_layer_1_first_when_urgent(model):  # noqa: F811
    data = token_data(rows=24, seed=7)
    policy = resolve_policy("static")  # every query runs to the last layer unless forced
    scheduler = make_scheduler(
        "layer-pool-deadline", model, data, np.arange(12), "classification", policy, 6, 4, deadline_s=1.0
    )
    now = [0.0]
    scheduler.start(lambda: now[0])
    for query in range(12):
        scheduler.admit(query, 0.0)
    assert scheduler.step() == [] and len(scheduler.pools[1]) == 4  # queries 0-3 passed layer 1
    scheduler.step_s = {(k, 4): 0.3 for k in range(6)}  # each step of 4 queries takes 0.3 s
    now[0] = 0.5  # layer 2 next would leave layer 1's oldest to finish it at 1.1 s, past its deadline
    assert scheduler.step() == [] and len(scheduler.pools[1]) == 8 and len(scheduler.pools[0]) == 4
    now[0] = 0.9  # any step now ends after every query's deadline: those past layer 1 leave with its answer,
    answers = scheduler.step()  # in a step of their own (answered now, not after another layer call)
    assert sorted(a.query for a in answers) == list(range(8))
    assert all(a.forced and a.exit_layer == 1 for a in answers)
    assert not scheduler.pools[1] and [q.query for q in scheduler.pools[0]] == [8, 9, 10, 11]


def test_a_deadline_shrinks_layer_1s_batch_to_what_its_oldest_hopeful_query_can_wait(model):  # noqa: F811
    data = token_data(rows=24, seed=7)
    policy = resolve_policy("static")
    schedulers = [
        make_scheduler(name, model, data, np.arange(12), "classification", policy, 6, 8, deadline_s=1.0)
        for name in ("layer-pool-deadline", "layer-pool")
    ]
    now = [0.0]
    for scheduler in schedulers:
        scheduler.start(lambda: now[0])
        for query in range(12):
            scheduler.admit(query, 0.1 * query)
        scheduler.step_s = {(0, 1): 0.1, (0, 2): 0.2, (0, 4): 0.4, (0, 8): 0.8}  # layer 1's step times
    deadline, plain = schedulers
    now[0] = 0.45  # query 0 has 0.55 s left: a step of 4 queries fits, of 8 does not
    assert deadline.batch_size(0) == 4 and plain.batch_size(0) == 8
    now[0] = 0.95  # query 0 has 0.05 s, too little for any step; query 1 has 0.15 s: one query fits
    assert deadline.batch_size(0) == 1
    now[0] = 2.5  # every query is past its deadline already: a full batch serves the most
    assert deadline.batch_size(0) == 8


def test_layer_pool_runs_the_deepest_full_pool_else_the_oldest_query(model):  # noqa: F811
    data = token_data(rows=8, seed=1)
    pool = LayerPool(
        model, data, np.arange(8), "classification", 2, resolve_policy("static"), model.num_layers
    )
    for query, arrival in enumerate([0.0, 0.1, 0.2]):
        pool.admit(query, arrival)
    assert pool.next_layer() == 0  # layer 1 holds a full batch
    pool.step()  # queries 0 and 1 to layer 2
    assert [q.query for q in pool.pools[1]] == [0, 1] and pool.next_layer() == 1  # the deepest full pool
    pool.step()
    assert [q.query for q in pool.pools[2]] == [0, 1]
    assert pool.next_layer() == 2  # full
    pool.pools[2].pop()
    assert pool.next_layer() == 2  # not full, but holds the oldest query (0)
    seen = []
    hook = model.layers[0].register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    try:
        pool.admit(3, 0.3)
        pool.pools[2].clear()
        pool.step()  # queries 2 and 3, at layer 1 together
    finally:
        hook.remove()
    assert seen == [2]


def test_an_exit_leaves_at_once_and_a_later_arrival_does_not_wait_for_the_batch(model):  # noqa: F811
    data = token_data(rows=4, seed=1)
    static = resolve_policy("static")
    pool = LayerPool(model, data, np.arange(4), "classification", 4, static, 1)
    pool.admit(0, 0.0)
    assert [a.query for a in pool.step()] == [0]  # answered after layer 1, nothing else ran
    assert not any(pool.pools)


def test_the_adaptive_pool_runs_a_lone_query_through_the_engine_and_others_through_the_pools(model):  # noqa: F811
    data = token_data(rows=8, seed=1)
    static = resolve_policy("static")
    pool = make_scheduler(
        "layer-pool-adaptive", model, data, np.arange(8), "classification", static, model.num_layers, 4
    )
    pool.admit(0, 0.0)
    assert pool.light()
    [answer] = pool.step()  # every layer in one call: answered at full depth, nothing left in the pools
    assert answer.exit_layer == model.num_layers and not any(pool.pools)
    for query in (1, 2):
        pool.admit(query, 0.1)
    assert not pool.light()  # two wait (less than a batch): one layer-pool step
    pool.step()
    assert [q.query for q in pool.pools[1]] == [1, 2]
    pool.admit(3, 0.2)
    assert not pool.light()  # one waits, but queries are in flight beyond layer 1


def test_poisson_arrivals_are_seeded_and_have_the_asked_rate():
    arrivals = poisson_arrivals(20000, 100.0, seed=4)
    assert arrivals[0] == 0 and (np.diff(arrivals) >= 0).all()
    assert np.diff(arrivals).mean() == pytest.approx(0.01, rel=0.03)
    np.testing.assert_array_equal(arrivals, poisson_arrivals(20000, 100.0, seed=4))


def test_single_stream_issues_each_query_when_the_previous_is_answered(model):  # noqa: F811
    data = token_data(rows=6, seed=1)
    scheduler = make_scheduler(
        "compaction", model, data, np.arange(6), "classification", resolve_policy("static"), 2, max_batch=4
    )
    served = serve(scheduler, 6)
    np.testing.assert_array_equal(served.arrivals[1:], served.answered[:-1])


def test_the_rate_search_finds_the_largest_rate_under_the_bound():
    def run_at(rate):  # p99 grows past the 50 ms bound above 300 queries/s
        latencies = np.full(100, 0.01 if rate <= 300 else 0.2)
        return Served(np.zeros(100), latencies, np.ones(100, dtype=int), np.zeros(100), np.zeros(100, bool))

    rate, tried = max_rate_under_bound(run_at, 50.0, 1000.0, steps=8)
    assert 300 - 1000 / 2**8 <= rate <= 300 and len(tried) == 8
    assert max_rate_under_bound(lambda r: run_at(1e9), 50.0, 1000.0, steps=3)[0] == 0


def test_repeated_runs_take_turns_and_report_the_median_one():
    order = []

    def measure(name, seed):
        order.append((name, seed))
        return {"rate": {"a": [3.0, 1.0, 2.0], "b": [5.0, 4.0, 6.0]}[name][seed], "seed": seed}

    runs = in_turns(["a", "b"], 3, measure)
    assert order == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert median_run(runs["a"], "rate") == {"rate": 2.0, "seed": 2, "runs": [3.0, 1.0, 2.0]}
    assert median_run(runs["b"][:2], "rate")["rate"] == 4.0  # the lower middle of an even count


def serve_bench_args(served, out, resources, *extra):
    """A quick serve-bench run of ``served`` (a model folder or an artefact) on a CPU, fp32, one thread."""
    quick = ["--policy", "entropy", "--value", "0.5", "--examples", "16", "--queries", "24"]
    quick += ["--search-steps", "2", "--repeats", "1", "--warmup", "4", "--threads", "1", "--out", str(out)]
    where = ["--resources", str(resources), "--device", "cpu", "--precision", "fp32"]
    return ["serve-bench", str(served), *quick, *where, *extra]


@pytest.fixture(scope="module")
def deebert_dir(tmp_path_factory, resources):
    model_dir = tmp_path_factory.mktemp("serving") / "deebert"
    argv = ["train", *TRAIN, "--recipe", "deebert", "--resources", str(resources), "--out", str(model_dir)]
    assert main(argv) == 0
    return model_dir


def test_serve_bench_writes_a_record_and_a_plot(tmp_path, resources, deebert_dir):
    out = tmp_path / "serving.json"
    assert main(serve_bench_args(deebert_dir, out, resources, "--repeats", "2")) == 0
    record = ServingRecord.from_dict(json.loads(out.read_text()), str(out))
    assert set(record.results) == set(SCHEDULERS)
    for results in record.results.values():
        assert results["single_stream"]["all"]["queries"] == 48 and results["single_stream"]["runs"] == 2
        assert results["offline"]["throughput_per_s"] > 0
        server = results["server"]
        assert len(server["tried"]) == 2 and server["rate_at_bound_per_s"] == min(server["runs"])
        assert len(results["overload"]["runs"]) == 2
    assert set(record.goals()) >= {
        "layer_pool_over_compaction_rate",
        "of_predicted_speedup",
        "deadline_overload_p99_over_bound",
        "deadline_overload_accuracy_drop_pt",
    }
    overload = record.results["layer-pool-deadline"]["overload"]
    assert overload["queries"] == 24 and 0 <= overload["forced_share"] <= 1
    assert (tmp_path / "serving.png").is_file() and (tmp_path / "serving.pdf").is_file()


def test_serve_bench_replays_an_artefact_where_the_weights_are_gone(tmp_path, resources, deebert_dir):
    """A model of the artefact's architecture, fresh heads: exits and answers are the artefact's."""
    artefact = tmp_path / "test.npz"
    evaluate = ["evaluate", str(deebert_dir), "--split", "test", "--max-eval", "12", "--out", str(artefact)]
    assert main([*evaluate, "--resources", str(resources), "--device", "cpu", "--precision", "fp32"]) == 0
    out = tmp_path / "replayed.json"
    only = [
        "--schedulers",
        "full-depth,layer-pool,layer-pool-deadline",
        "--scenarios",
        "offline,server,overload",
    ]
    assert (
        main(serve_bench_args(artefact, out, resources, *only)) == 0
    )  # checks every scheduler's exits first
    record = ServingRecord.from_dict(json.loads(out.read_text()), str(out))
    recorded = ExitArtifact.load(artefact).predictions
    exits = resolve_policy("entropy").exit_layers(recorded, 0.5)
    assert record.model.replayed and record.model.split == record.settings.split == "test"
    assert record.model.examples == 12  # --examples 16 asks for more rows than the artefact holds
    assert record.mean_exit_layer == pytest.approx(exits.mean())
    assert set(record.results) == {"full-depth", "layer-pool", "layer-pool-deadline"}
    right = recorded.predictions()[exits - 1, np.arange(12)] == recorded.labels  # the recorded answers
    overload = record.results["layer-pool"]["overload"]
    assert overload["accuracy"] == pytest.approx(right[query_examples(12, 24, 0)].mean())


def test_serve_bench_refuses_the_oracle(tmp_path, capsys):
    assert (
        main(
            [
                "serve-bench",
                str(tmp_path),
                "--policy",
                "oracle",
                "--value",
                "0",
                "--out",
                str(tmp_path / "s.json"),
            ]
        )
        == 2
    )
    assert "reads the labels" in capsys.readouterr().err


def test_serve_bench_checks_scheduler_names(capsys):
    with pytest.raises(SystemExit):
        main(
            [
                "serve-bench",
                "m",
                "--policy",
                "entropy",
                "--value",
                "0",
                "--schedulers",
                "fifo",
                "--out",
                "s.json",
            ]
        )
    assert "names from full-depth, compaction, layer-pool" in capsys.readouterr().err
