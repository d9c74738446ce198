"""CommitOrder: results, then state in input order, then the ack; plain asyncio futures stand in for the broker."""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline.kafka.commit_order import CommitOrder


class Broker:
    """Records what was handed over and acknowledged, in order."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.errors: list[tuple[Any, BaseException]] = []

    def order(self, max_in_flight: int = 100) -> CommitOrder:
        async def ack(record: Any) -> None:
            self.log.append(f"ack {record}")

        def send(write: asyncio.Future) -> None:
            self.log.append(f"send {write.name}")  # type: ignore[attr-defined]

        return CommitOrder(send, ack, lambda record, exc: self.errors.append((record, exc)), max_in_flight)


def future(name: str = "") -> asyncio.Future:
    fut = asyncio.get_running_loop().create_future()
    fut.name = name  # type: ignore[attr-defined]
    return fut


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_state_waits_for_results_and_the_ack_waits_for_state() -> None:
    async def scenario() -> list[str]:
        broker = Broker()
        order = broker.order()
        result, write = future(), future("w1")
        await order.submit(1, [result], [write])
        await settle()
        assert broker.log == []  # results not acknowledged: the state stays back
        result.set_result(None)
        await settle()
        assert broker.log == ["send w1"]  # handed over, not acknowledged: no ack yet
        write.set_result(None)
        await settle()
        assert await order.drain(1.0)
        return broker.log

    assert asyncio.run(scenario()) == ["send w1", "ack 1"]


def test_a_later_state_never_overtakes_an_earlier_one() -> None:
    async def scenario() -> list[str]:
        broker = Broker()
        order = broker.order()
        slow, fast = future(), future()
        w1, w2 = future("w1"), future("w2")
        await order.submit(1, [slow], [w1])
        await order.submit(2, [fast], [w2])
        fast.set_result(None)  # record 2's results are acknowledged first
        await settle()
        assert broker.log == []
        slow.set_result(None)
        await settle()
        w2.set_result(None)
        w1.set_result(None)
        assert await order.drain(1.0)
        return broker.log

    log = asyncio.run(scenario())
    assert log[:2] == ["send w1", "send w2"]
    assert sorted(log[2:]) == ["ack 1", "ack 2"]


def test_records_are_acknowledged_in_input_order() -> None:
    async def scenario() -> list[str]:
        broker = Broker()
        order = broker.order()
        await order.submit(1, [], [])  # nothing pending: acknowledged at once
        pending, w2, w3 = future(), future("w2"), future("w3")
        await order.submit(2, [pending], [w2])
        await order.submit(3, [], [w3])
        await order.submit(4, [], [])  # no effects of its own, but 2 and 3 are pending
        pending.set_result(None)
        await settle()
        w3.set_result(None)  # 3's state is stored before 2's
        await settle()
        assert broker.log == ["ack 1", "send w2", "send w3"]  # faust would commit past 2 if 3 came first
        w2.set_result(None)
        assert await order.drain(1.0)
        return broker.log

    assert asyncio.run(scenario()) == ["ack 1", "send w2", "send w3", "ack 2", "ack 3", "ack 4"]


def test_a_failed_write_is_reported_and_never_acknowledged() -> None:
    async def scenario() -> Broker:
        broker = Broker()
        order = broker.order()
        write = future("w1")
        await order.submit(1, [], [write])
        await settle()
        write.set_exception(OSError("broker gone"))
        await settle()
        return broker

    broker = asyncio.run(scenario())
    assert broker.log == ["send w1"]
    assert [(r, str(e)) for r, e in broker.errors] == [(1, "broker gone")]


def test_submit_waits_while_too_many_records_are_pending() -> None:
    async def scenario() -> tuple[bool, bool]:
        order = Broker().order(max_in_flight=2)
        blockers = [future() for _ in range(3)]
        for i, blocker in enumerate(blockers[:2]):
            await order.submit(i, [blocker], [])
        third = asyncio.create_task(order.submit(2, [blockers[2]], []))
        await settle()
        waited = not third.done()
        blockers[0].set_result(None)
        await settle()
        return waited, third.done()

    assert asyncio.run(scenario()) == (True, True)


def test_drain_gives_up_what_is_still_pending() -> None:
    async def scenario() -> tuple[bool, bool]:
        order = Broker().order()
        await order.submit(1, [future()], [])
        drained = await order.drain(0.05)
        await settle()
        return drained, all(t.cancelled() for t in order._in_flight)

    assert asyncio.run(scenario()) == (False, True)
