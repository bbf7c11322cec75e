"""Progress lines for logs: at most one per interval, with the position, the rate and the time left."""

import logging

from fastexit_bench.progress import ProgressLog


def test_progress_lines_give_rate_and_time_left(caplog):
    now = [0.0]
    lines = ProgressLog(
        logging.getLogger("t"), "fastbert/fine-tuning", total=100, done=20, clock=lambda: now[0]
    )
    with caplog.at_level(logging.INFO):
        for _ in range(10):  # 10 steps of 32 examples in 20 s: 16 examples/s, 70 steps left at 2 s each
            now[0] += 2.0
            lines.update(32, "loss 0.5")
        assert caplog.messages == []  # nothing before a minute has passed
        for _ in range(20):
            now[0] += 2.0
            lines.update(32)
    (line,) = caplog.messages
    assert line == "fastbert/fine-tuning: step 50/100 (50%), 16.0 examples/s, 2 min left"
