"""Progress lines for long work in logs: a log file or a pipe shows no progress bar, and a 50-minute run
must not look the same as a hung one. Every ``every_s`` seconds: done / total, the rate and the time left."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

PROGRESS_EVERY_S = 60.0


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class ProgressLog:
    """Counts ``steps`` of ``what`` (each ``per_step`` ``unit``), logging at most once per ``every_s`` seconds;
    ``done``: steps finished before (a resumed run), left out of the rate."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        total: int,
        done: int = 0,
        unit: str = "examples",
        every_s: float = PROGRESS_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.log, self.what, self.total, self.done, self.unit = log, what, total, done, unit
        self.every_s, self.clock = every_s, clock
        self.started = self.last = clock()
        self.steps = self.units = 0

    def update(self, units: int, note: str = "") -> None:
        """One more step of ``units`` done (``note``: e.g. the loss, appended to the line)."""
        self.steps += 1
        self.units += units
        now = self.clock()
        if now - self.last < self.every_s:
            return
        self.last, elapsed = now, now - self.started
        position = self.done + self.steps
        left = (self.total - position) * elapsed / self.steps
        self.log.info(
            "%s: step %d/%d (%.0f%%), %.1f %s/s, %s left%s",
            self.what,
            position,
            self.total,
            100 * position / max(self.total, 1),
            self.units / elapsed,
            self.unit,
            _duration(left),
            f", {note}" if note else "",
        )
