from __future__ import annotations

import logging

from pipeline.logs import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(name: str, msg: str = "Unable connect to node with id %s", *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args or (1,), None)


def test_repeats_of_a_noisy_logger_are_thinned_and_counted():
    clock = Clock()
    thin = RepeatFilter(("aiokafka",), interval_s=10.0, clock=clock)
    shown = []
    for step in range(250):  # every 100 ms for 25 s
        clock.now = step / 10
        record = _record("aiokafka.consumer.fetcher")
        if thin.filter(record):
            shown.append((clock.now, record.getMessage()))
    assert [t for t, _ in shown] == [0.0, 10.0, 20.0]
    assert shown[0][1] == "Unable connect to node with id 1"
    assert shown[1][1] == "Unable connect to node with id 1 [99 more like this in the last 10 s not shown]"


def test_other_messages_and_other_loggers_pass():
    thin = RepeatFilter(("aiokafka",), interval_s=10.0, clock=Clock())
    assert thin.filter(_record("aiokafka")) and not thin.filter(_record("aiokafka"))
    assert thin.filter(_record("aiokafka", "Unable to update metadata from %s"))
    assert all(thin.filter(_record(name)) for name in ["pipeline.counting.app", "aiokafkax", "faust"] * 3)
