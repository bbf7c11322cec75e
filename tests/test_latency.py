"""The latency harness times what it is given, with warmup, and reports median and p90."""

import time

import pytest
import torch

from fastexit_bench.runtime.latency import set_threads, time_call


def test_time_call_warms_up_and_reports_median_and_p90():
    calls = []

    def sleepy():
        calls.append(1)
        time.sleep(0.002)

    timing = time_call(sleepy, torch.device("cpu"), warmup=2, repeats=5)
    assert len(calls) == 7 and timing.repeats == 5 and len(timing.samples_s) == 5
    assert 0.002 <= timing.median_s <= timing.p90_s < 0.2


def test_threads_are_set_and_reported():
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1 == torch.get_num_threads()
        assert set_threads(None) == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_events_time_gpu_work():
    x = torch.randn(2048, 2048, device="cuda")
    timing = time_call(lambda: x @ x, torch.device("cuda"), warmup=2, repeats=5)
    assert 0 < timing.median_s <= timing.p90_s
