"""The clocks schedulers are served on: the virtual clock charges each model call its cost (measured once per
shape), the host the serving thread's CPU time, and waiting nothing; the oneDNN kernel cache is sized for
early exit's many shapes."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.serving.clocks import VirtualClock, make_clock
from fastexit_bench.serving.loadgen import poisson_arrivals, serve
from fastexit_bench.serving.schedulers import make_scheduler
from tests.test_inference import model  # noqa: F401 (the fixture: tiny highway and branch models)
from tests.test_recipes import token_data

CALL_S = 0.01
"""What every model call costs on the test's virtual clock."""


def test_the_virtual_clock_charges_a_calls_cost_once_measured_and_jumps_over_waits():
    measured, calls = [], []
    clock = VirtualClock(measure=lambda call: measured.append(call) or 0.25)
    clock.wait_until(5.0)
    time.sleep(0.05)  # a sleeping thread accrues no CPU time
    assert 5.0 <= clock.now() < 5.01
    assert clock.charged(("layer", 2, 7), lambda: calls.append(1) or "out") == "out"
    assert clock.charged(("layer", 2, 7), lambda: calls.append(1) or "out") == "out"
    assert len(measured) == 1 and len(calls) == 2  # measured the first time the shape was met only
    assert 5.5 <= clock.now() < 5.51
    clock.start()
    assert clock.now() < 0.01 and clock.costs == {("layer", 2, 7): 0.25}  # costs outlive a run


def test_a_query_served_alone_on_the_virtual_clock_takes_what_its_calls_cost(model):  # noqa: F811
    data = token_data(rows=8, seed=3)
    clock = VirtualClock(measure=lambda call: CALL_S)
    static = resolve_policy("static")  # reads no head: the embedding, every layer, then the exit head
    scheduler = make_scheduler(
        "full-depth", clock.model(model), data, np.arange(8), "classification", static, 4, max_batch=4
    )
    arrivals = poisson_arrivals(8, 0.5, seed=2)  # one every 2 s of virtual time: nobody queues
    started = time.perf_counter()
    served = serve(scheduler, 8, arrivals, clock)
    assert time.perf_counter() - started < arrivals[-1] / 4  # the waits are jumped, not slept
    calls = 1 + model.num_layers + 1
    assert (served.latencies_s >= calls * CALL_S).all()
    assert served.latencies_s == pytest.approx(np.full(8, calls * CALL_S), abs=0.005)  # + host CPU time


def test_a_run_on_the_virtual_clock_repeats_on_the_same_arrivals(model):  # noqa: F811
    data = token_data(rows=16, seed=4)
    clock = make_clock("virtual")
    policy, arrivals = resolve_policy("entropy"), poisson_arrivals(16, 2000.0, seed=5)  # queries queue
    runs = []
    for _ in range(2):  # the second run's calls were all costed in the first
        scheduler = make_scheduler(
            "compaction", clock.model(model), data, np.arange(16), "classification", policy, 0.3, 4
        )
        runs.append(serve(scheduler, 16, arrivals, clock))
    assert clock.costs
    np.testing.assert_allclose(runs[0].answered, runs[1].answered, atol=0.002)  # host CPU time varies


@pytest.mark.parametrize("preset", [None, "64"])
def test_the_onednn_kernel_cache_is_enlarged_unless_the_user_sized_it(preset):
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    if preset:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = preset
    read = "import os, fastexit_bench.execution as e; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"
    out = subprocess.run([sys.executable, "-c", read], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (preset or "16384")
