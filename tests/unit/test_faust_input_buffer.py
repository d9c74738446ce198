"""The agents' input buffer: kept when faust resumes flow, emptied when it revokes partitions."""

from __future__ import annotations

from pipeline.config import parse_settings
from pipeline.kafka.faust_app import make_app, raw_topic


def _buffered_topic():
    app = make_app(parse_settings({}, "<test>"), "buffer-test")
    return app, raw_topic(app, "frames").clone(is_iterator=True)


def test_resuming_flow_keeps_buffered_records() -> None:
    app, topic = _buffered_topic()
    app.flow_control.resume()
    topic.queue.put_nowait("r1")
    topic.queue.put_nowait("r2")
    app.flow_control.resume()  # what faust does at the end of every table recovery
    assert [topic.queue.get_nowait(), topic.queue.get_nowait()] == ["r1", "r2"]


def test_revoking_partitions_empties_the_buffer() -> None:
    app, topic = _buffered_topic()
    app.flow_control.resume()
    topic.queue.put_nowait("r1")
    app.flow_control.suspend()  # faust's order on revocation: suspend, then clear
    app.flow_control.clear()
    assert topic.queue.empty()
