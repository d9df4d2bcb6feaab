"""Progress where the user looks when output goes to a log file (where progress bars do not show).

A `ProgressLines` prints `label: done/total (p %), elapsed, ~left` each time another `every`
percent is done, flushed at once; on a terminal it stays silent (the progress bars show there).
"""

from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class ProgressLines:
    def __init__(self, total: int, label: str, every: float = 5.0, enabled: bool | None = None):
        self.total, self.label, self.every = max(1, int(total)), label, every
        self.enabled = (not sys.stdout.isatty()) if enabled is None else enabled
        self.start, self.next = time.monotonic(), every

    def update(self, done: int, note: str = "") -> None:
        """Report `done` of `total` if it crosses the next step of `every` percent."""
        percent = 100.0 * done / self.total
        if not self.enabled or percent < self.next:
            return
        while self.next <= percent:
            self.next += self.every
        elapsed = time.monotonic() - self.start
        left = elapsed * (self.total - done) / max(done, 1)
        extra = f", {note}" if note else ""
        times = f"{_clock(elapsed)} elapsed, ~{_clock(left)} left"
        print(f"{self.label}: {done}/{self.total} ({percent:.0f} %){extra}, {times}", flush=True)
