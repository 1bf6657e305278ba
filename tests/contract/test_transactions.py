"""Transactions across streams, queues and consumer progress, on both stores: all or nothing,
results known at commit, expectations checked at commit, positions in call order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pgstreams import (
    AppendResult,
    ConcurrencyError,
    ConfigurationError,
    DuplicateEventError,
    Event,
    StoreTimeoutError,
)

from .helpers import collect, name


def events(count: int, tag: str = "e") -> list[Event]:
    return [Event("Happened", {"n": i, "tag": tag}) for i in range(count)]


async def state(store: Any, streams: list[str], queue: str, group_stream: str) -> Any:
    """What a transaction may have written: stream versions, the queue, a group's offset."""
    return (
        [await store.get_stream_version(s) for s in streams],
        await store.get_pending_count(queue),
        await store.get_committed_offset(group_stream, "projector"),
    )


async def test_a_transaction_over_three_streams_a_queue_and_an_offset_commits_it_all(
    store: Any,
) -> None:
    upstream, a, b, c, queue = name("up"), name("a"), name("b"), name("c"), name("q")
    await store.append_batch(upstream, events(3))
    async with store.transaction() as tx:
        first = tx.append_batch(a, events(2), expected_version=-1)
        second = tx.append(b, Event("One", {}))
        third = tx.append_batch(c, events(3))
        outbox = tx.enqueue_batch(queue, events(2, "mail"))
        moved = tx.commit_offset(upstream, "projector", 3, expected=None)
        assert not first.done()
    assert first.result() == [0, 1]
    assert isinstance(first.result(), AppendResult)
    assert second.result() == 0
    assert third.result() == [0, 1, 2]
    assert len(outbox.result()) == 2
    assert moved.result() is True
    assert await state(store, [a, b, c], queue, upstream) == ([1, 0, 2], 2, 3)
    feed = await collect(store.read_all())
    written = [(e.stream, e.offset) for e in feed if e.stream in (a, b, c)]
    # Positions follow the calls: a's two events, then b's, then c's.
    assert written == [(a, 0), (a, 1), (b, 0), (c, 0), (c, 1), (c, 2)]
    by_stream = {(e.stream, e.offset): e.position for e in feed}
    assert first.result().positions == [by_stream[a, 0], by_stream[a, 1]]
    assert third.result().positions == [by_stream[c, i] for i in range(3)]


async def test_a_conflict_in_the_last_stream_writes_nothing_anywhere(store: Any) -> None:
    upstream, a, b, c, queue = name("up"), name("a"), name("b"), name("c"), name("q")
    await store.append_batch(upstream, events(3))
    await store.append_batch(c, events(2))
    before = await state(store, [a, b, c], queue, upstream)
    with pytest.raises(ConcurrencyError) as raised:
        async with store.transaction() as tx:
            first = tx.append_batch(a, events(2))
            tx.append_batch(b, events(1))
            tx.enqueue(queue, Event("Mail", {}))
            tx.commit_offset(upstream, "projector", 3)
            tx.append_batch(c, events(1), expected_version=0)
    assert (raised.value.stream, raised.value.expected, raised.value.actual) == (c, 0, 1)
    assert "nothing in the transaction was written" in str(raised.value)
    assert await state(store, [a, b, c], queue, upstream) == before
    assert await store.get_head_position() == 5
    with pytest.raises(asyncio.InvalidStateError):
        first.result()


async def test_an_exception_in_the_block_rolls_back_and_propagates(store: Any) -> None:
    a, queue, upstream = name("a"), name("q"), name("up")
    await store.append_batch(upstream, events(2))

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with store.transaction() as tx:
            tx.append_batch(a, events(2))
            tx.enqueue(queue, Event("Mail", {}))
            tx.commit_offset(upstream, "projector", 1)
            raise Boom
    assert await state(store, [a], queue, upstream) == ([-1], 0, None)


async def test_a_cancelled_transaction_writes_nothing_and_the_store_goes_on(store: Any) -> None:
    a, queue, upstream = name("a"), name("q"), name("up")
    await store.append_batch(upstream, events(2))
    entered = asyncio.Event()

    async def transaction() -> None:
        async with store.transaction() as tx:
            tx.append_batch(a, events(2))
            tx.enqueue(queue, Event("Mail", {}))
            tx.commit_offset(upstream, "projector", 1)
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(transaction())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await state(store, [a], queue, upstream) == ([-1], 0, None)
    assert await store.append_batch(a, events(1)) == [0]


async def test_a_transaction_longer_than_its_timeout_is_rolled_back(store: Any) -> None:
    a = name("a")
    with pytest.raises(StoreTimeoutError, match="rolled back"):
        async with store.transaction(timeout=0.2) as tx:
            tx.append_batch(a, events(1))
            await asyncio.sleep(10)
    assert await store.get_stream_version(a) == -1


async def test_a_stream_appended_twice_sees_its_first_append(store: Any) -> None:
    a = name("a")
    async with store.transaction() as tx:
        first = tx.append_batch(a, events(2), expected_version=-1)
        second = tx.append_batch(a, events(1), expected_version=1)
    assert (first.result(), second.result()) == ([0, 1], [2])
    assert second.result().positions[0] > first.result().positions[1]
    with pytest.raises(ConcurrencyError):
        async with store.transaction() as tx:
            tx.append_batch(a, events(1), expected_version=2)
            tx.append_batch(a, events(1), expected_version=2)
    assert await store.get_stream_version(a) == 2


async def test_event_ids_are_strict_inside_a_transaction(store: Any) -> None:
    a, b = name("a"), name("b")
    stored = Event("Once", {})
    assert await store.append(a, stored) == 0
    # Outside a transaction the same call again is a retry; inside, a duplicate.
    assert await store.append(a, stored) == 0
    with pytest.raises(DuplicateEventError, match="already stored"):
        async with store.transaction() as tx:
            tx.append_batch(b, events(1))
            tx.append(a, stored)
    repeated = Event("Twice", {})
    with pytest.raises(DuplicateEventError, match="more than once"):
        async with store.transaction() as tx:
            tx.append(a, repeated)
            tx.append(b, repeated)
    assert [await store.get_stream_version(s) for s in (a, b)] == [0, -1]


async def test_offset_and_position_expectations_are_checked_at_commit(store: Any) -> None:
    up, out = name("up"), name("out")
    await store.append_batch(up, events(4))
    await store.commit_offset(up, "g", 1)
    with pytest.raises(ConcurrencyError) as raised:
        async with store.transaction() as tx:
            tx.append(out, Event("Derived", {}))
            tx.commit_offset(up, "g", 2, expected=0)
    assert (raised.value.stream, raised.value.expected, raised.value.actual) == (up, 0, 1)
    with pytest.raises(ConfigurationError, match="past the end"):
        async with store.transaction() as tx:
            tx.append(out, Event("Derived", {}))
            tx.commit_offset(up, "g", 99)
    with pytest.raises(ConcurrencyError) as raised:
        async with store.transaction() as tx:
            tx.commit_position("feed", 1, expected=3)
    assert (raised.value.stream, raised.value.expected, raised.value.actual) == (None, 3, None)
    with pytest.raises(ConfigurationError, match="past the end of the global feed"):
        async with store.transaction() as tx:
            tx.commit_position("feed", 10**12)
    assert await store.get_stream_version(out) == -1
    async with store.transaction() as tx:
        ahead = tx.commit_offset(up, "g", 3, expected=1)
        behind = tx.commit_offset(up, "other", 2)
        at_feed = tx.commit_position("feed", 2, expected=None)
    assert (ahead.result(), behind.result(), at_feed.result()) == (True, True, True)
    async with store.transaction() as tx:
        back = tx.commit_offset(up, "g", 1)
    assert back.result() is False  # forward only: a lagging commit is a no-op
    assert await store.get_committed_offset(up, "g") == 3
    assert await store.get_committed_position("feed") == 2


async def test_an_acknowledgement_counts_only_if_the_transaction_commits(store: Any) -> None:
    queue, out = name("q"), name("out")
    await store.enqueue_batch(queue, events(2))
    first, second = await store.dequeue_batch(queue, "worker", 2, visibility_timeout=30)
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            tx.acknowledge(first)
            raise RuntimeError("handler failed")
    assert await store.get_pending_count(queue) == 2
    async with store.transaction() as tx:
        handled = tx.append(out, Event("Handled", {}))
        acked = tx.acknowledge(first)
        by_id = tx.acknowledge(second.id)
    assert (handled.result(), acked.result(), by_id.result()) == (0, True, True)
    assert await store.get_pending_count(queue) == 0


async def test_the_outbox_message_exists_only_once_the_transaction_commits(store: Any) -> None:
    queue, a = name("q"), name("a")
    async with store.transaction() as tx:
        ids = tx.enqueue_batch(queue, events(3))
        tx.append(a, Event("Placed", {}))
        assert await store.get_pending_count(queue) == 0
    batch = await store.dequeue_batch(queue, "worker", 10, visibility_timeout=30)
    assert [m.id for m in batch] == ids.result()


async def test_staged_operations_need_an_open_transaction(store: Any) -> None:
    a = name("a")
    tx = store.transaction()
    with pytest.raises(ConfigurationError, match="inside `async with"):
        tx.append(a, Event("Early", {}))
    async with tx:
        pending = tx.append(a, Event("On time", {}))
        with pytest.raises(asyncio.InvalidStateError):
            pending.result()
    with pytest.raises(ConfigurationError, match="over"):
        tx.append(a, Event("Late", {}))
    with pytest.raises(ConfigurationError, match="only once"):
        async with tx:
            pass
    assert pending.result() == 0


async def test_bad_arguments_fail_at_the_call_and_the_block_can_go_on(store: Any) -> None:
    a = name("a")
    async with store.transaction() as tx:
        with pytest.raises(ConfigurationError):
            tx.append_batch(a, events(1), expected_version=-2)
        with pytest.raises(ConfigurationError):
            tx.commit_offset(a, "g", -1)
        with pytest.raises(ConfigurationError):
            tx.commit_position("g", 2**64)
        done = tx.append(a, Event("Fine", {}))
    assert done.result() == 0
    with pytest.raises(ConfigurationError, match="timeout"):
        store.transaction(timeout=1e20)
    with pytest.raises(ConfigurationError, match="timeout"):
        store.transaction(timeout=-1)


async def test_an_empty_transaction_and_an_empty_append_commit(store: Any) -> None:
    a = name("a")
    async with store.transaction():
        pass
    async with store.transaction() as tx:
        nothing = tx.append_batch(a, [])
        one = tx.append(a, Event("One", {}))
    assert (nothing.result(), nothing.result().positions, one.result()) == ([], [], 0)


async def test_of_processors_racing_on_one_upstream_event_exactly_one_commits(
    store: Any,
) -> None:
    """The conditional offset: each processor handles upstream event 0 and records how far
    it got, expecting nothing recorded yet. Exactly one wins; the others write nothing."""
    upstream, out = name("up"), name("out")
    await store.append_batch(upstream, events(1))
    start = asyncio.Event()

    async def processor(index: int) -> bool:
        await start.wait()
        try:
            async with store.transaction() as tx:
                tx.append(out, Event("Derived", {"by": index}))
                tx.commit_offset(upstream, "processors", 1, expected=None)
        except ConcurrencyError:
            return False
        return True

    tasks = [asyncio.create_task(processor(i)) for i in range(12)]
    await asyncio.sleep(0)
    start.set()
    outcomes = await asyncio.gather(*tasks)
    assert sum(outcomes) == 1
    assert len(await collect(store.read_stream(out))) == 1
    assert await store.get_committed_offset(upstream, "processors") == 1


async def test_append_results_carry_the_positions_read_back(store: Any) -> None:
    a = name("a")
    small_batch, large_batch = events(3), events(150)  # large: the COPY path
    small = await store.append_batch(a, small_batch)
    large = await store.append_batch(a, large_batch)
    stored = {e.offset: e.position for e in await collect(store.read_stream(a))}
    assert small.positions == [stored[o] for o in small]
    assert large.positions == [stored[o] for o in large]
    assert large == list(range(3, 153))
    # A retry answers with what the first call was given, positions included.
    for batch, first in ((small_batch, small), (large_batch, large)):
        again = await store.append_batch(a, batch)
        assert (again, again.positions) == (first, first.positions)
    empty = await store.append_batch(a, [])
    assert (empty, empty.positions) == ([], [])
