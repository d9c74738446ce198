"""When a stream processor may acknowledge an input record: after what it caused is on the broker.

A stateful processor (the counter, the aggregator and the alerter use this) turns
one input record into results (records it publishes) and state changes (table writes that
go to a changelog topic).
After a crash the state is restored from the changelog and input is replayed from the
last committed offset, so three things must hold for nothing to be lost:

1. a record's state changes go to the changelog only once its results are acknowledged
   (a state whose results were lost would never re-emit them; results whose state was
   lost are re-emitted, identically, when the record is replayed);
2. state changes go out in input order (a later state never overtakes an earlier one
   of the same key);
3. the record is acknowledged (its offset may be committed) only once its state changes
   are acknowledged too, and records are acknowledged in input order: faust commits past
   an unacknowledged record when a later one is acknowledged first (its head-gap check
   misses a gap of one, and any gap before the first commit).

faust alone does not give 3: it commits a record once the agent returns, after a
producer flush that gives up on a changelog write taking over 100 ms to hand over
(``ProducerBuffer.flush_atmost``), so under load the commit can overtake the state and
a ``kill -9`` then loses counts. ``CommitOrder`` is pure asyncio (no faust, no Kafka):
the faust glue in ``faust_app`` feeds it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Awaitable, Callable, Sequence

#: Records whose writes may be pending at once before the agent waits for the oldest.
MAX_IN_FLIGHT = 1000


class CommitOrder:
    """Per agent: persist each record's writes after its results, in input order, then ack it.

    ``send`` hands one prepared changelog write to the producer (its future resolves when
    the broker acknowledged it); ``ack`` acknowledges an input record; ``on_error`` is called
    with the exception when a result or write failed (the state is then unknown: the caller
    stops the worker rather than go on).
    """

    def __init__(self, send: Callable[[asyncio.Future], None], ack: Callable[[Any], Awaitable[Any]],
                 on_error: Callable[[Any, BaseException], None], max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._send, self._ack, self._on_error = send, ack, on_error
        self._max_in_flight = max_in_flight
        self._issued: asyncio.Future | None = None  # the previous record's writes were handed over
        self._acked: asyncio.Future | None = None  # the previous record was acknowledged
        self._in_flight: deque[asyncio.Task] = deque()

    async def submit(self, record: Any, results: Sequence[Awaitable[Any]], writes: Sequence[asyncio.Future]) -> None:
        """Called in input order, once per record; waits only while too many records are pending."""
        if not results and not writes and (self._acked is None or self._acked.done()):
            await self._ack(record)  # nothing of its own, nothing before it pending
            return
        loop = asyncio.get_running_loop()
        previous = (self._issued, self._acked)
        self._issued, self._acked = loop.create_future(), loop.create_future()
        task = loop.create_task(self._persist(record, results, writes, previous, (self._issued, self._acked)))
        task.add_done_callback(lambda t: t.cancelled() or t.exception() is None
                               or self._on_error(record, t.exception()))
        self._in_flight.append(task)
        while self._in_flight and self._in_flight[0].done():
            self._in_flight.popleft()
        if len(self._in_flight) > self._max_in_flight:
            await asyncio.wait([self._in_flight.popleft()])

    async def drain(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) for every submitted record to be acknowledged; True if all were.

        What is still pending then is given up (cancelled): those records were not
        acknowledged, so they are read again after a restart.
        """
        pending = [t for t in self._in_flight if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)
        late = [t for t in pending if not t.done()]
        for task in late:
            task.cancel()
        return not late

    async def _persist(self, record: Any, results: Sequence[Awaitable[Any]], writes: Sequence[asyncio.Future],
                       previous: tuple[asyncio.Future | None, asyncio.Future | None],
                       mine: tuple[asyncio.Future, asyncio.Future]) -> None:
        (issued_before, acked_before), (issued, acked) = previous, mine
        if results:
            await asyncio.gather(*results)
        if issued_before is not None:
            await issued_before
        for write in writes:
            self._send(write)
        issued.set_result(None)
        if writes:
            await asyncio.gather(*writes)
        if acked_before is not None:
            await acked_before
        await self._ack(record)
        acked.set_result(None)
