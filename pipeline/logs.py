"""Log set-up of every ``camcount`` command, and a filter for the clients that log each retry.

aiokafka (under faust) logs an ERROR for every failed attempt while the broker is
unreachable: several a second per connection, hundreds of thousands of lines in a long
outage, which drown what else the worker says. ``RepeatFilter`` lets the first of a kind
through, then one per interval with how many it held back.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

#: Loggers whose repeats are thinned.
NOISY_LOGGERS = ("aiokafka",)
REPEAT_INTERVAL_S = 10.0
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RepeatFilter(logging.Filter):
    """One record per (logger, message template) per ``interval_s`` from ``loggers`` and their children."""

    def __init__(self, loggers: tuple[str, ...] = NOISY_LOGGERS, interval_s: float = REPEAT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._loggers = loggers
        self._interval_s, self._clock = interval_s, clock
        self._last: dict[tuple[str, object], tuple[float, int]] = {}  # -> (time shown, held back since)
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not any(record.name == name or record.name.startswith(f"{name}.") for name in self._loggers):
            return True
        key, now = (record.name, record.msg), self._clock()
        with self._lock:
            shown, held = self._last.get(key, (None, 0))
            if shown is not None and now - shown < self._interval_s:
                self._last[key] = (shown, held + 1)
                return False
            self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {now - shown:.0f} s not shown]"
        return True


def setup(verbosity: int) -> None:
    """Level from ``-v`` count (0: WARNING, 1: INFO, 2+: DEBUG), our format, repeats thinned."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbosity, 2)]
    logging.basicConfig(level=level, format=FORMAT)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RepeatFilter())
