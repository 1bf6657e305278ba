"""Ephemeral streams: FIFO leasing, acknowledgements, receipts, nacks, delays, waiting consumers,
concurrent consumers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from pgstreams import Event, QueuedEvent

from .helpers import name

LEASE = 0.3  # a visibility timeout short enough to let a lease expire within a test
EXPIRE = 0.5  # how long to sleep for such a lease to have expired


def messages(count: int) -> list[Event]:
    return [Event("Job", {"n": i}) for i in range(count)]


async def test_empty_queue_gives_none_and_empty_batch(store: Any) -> None:
    stream = name()
    assert await store.dequeue(stream, "c") is None
    assert await store.dequeue_batch(stream, "c", 10) == []
    assert await store.get_pending_count(stream) == 0


async def test_enqueue_returns_the_event_id(store: Any) -> None:
    stream = name()
    event = Event("Job", {})
    assert await store.enqueue(stream, event) == event.id
    batch = messages(3)
    assert await store.enqueue_batch(stream, batch) == [e.id for e in batch]
    assert await store.enqueue_batch(stream, []) == []
    assert await store.get_pending_count(stream) == 4


async def test_messages_are_delivered_in_fifo_order(store: Any) -> None:
    stream = name()
    singles = messages(3)
    for event in singles:
        await store.enqueue(stream, event)
    batch = [Event("Job", {"n": 10 + i}) for i in range(4)]
    await store.enqueue_batch(stream, batch)
    got = []
    while (message := await store.dequeue(stream, "c")) is not None:
        got.append(message.id)
    assert got == [e.id for e in [*singles, *batch]]


async def test_dequeue_batch_takes_the_oldest_first_up_to_max_count(store: Any) -> None:
    stream = name()
    batch = messages(7)
    await store.enqueue_batch(stream, batch)
    first = await store.dequeue_batch(stream, "c", 3)
    second = await store.dequeue_batch(stream, "c", 10)
    assert [m.id for m in first] == [e.id for e in batch[:3]]
    assert [m.id for m in second] == [e.id for e in batch[3:]]


async def test_queued_event_carries_the_message_and_its_lease(store: Any) -> None:
    stream = name()
    event = Event(
        "Job",
        {"task": "resize", "size": [640, 480]},
        metadata={"tenant": "t1"},
        correlation_id="corr",
        causation_id="cause",
    )
    await store.enqueue(stream, event)
    message = await store.dequeue(stream, "worker-1", 30.0)
    assert isinstance(message, QueuedEvent)
    assert message.id == event.id
    assert message.stream == stream
    assert message.type == "Job"
    assert message.data == {"task": "resize", "size": [640, 480]}
    assert message.metadata == {"tenant": "t1"}
    assert (message.correlation_id, message.causation_id) == ("corr", "cause")
    assert message.delivery_count == 1
    assert message.consumer_id == "worker-1"
    assert isinstance(message.lease, uuid.UUID)
    assert isinstance(message.enqueued_at, datetime) and message.enqueued_at.tzinfo is not None
    assert message.lease_expires_at - message.enqueued_at >= timedelta(seconds=25)


async def test_visibility_timeout_accepts_a_timedelta(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    message = await store.dequeue(stream, "c", timedelta(minutes=2))
    assert message is not None
    assert message.lease_expires_at - message.enqueued_at >= timedelta(seconds=100)


async def test_queues_of_different_streams_are_separate(store: Any) -> None:
    first, second = name(), name()
    await store.enqueue(first, Event("First", {}))
    await store.enqueue(second, Event("Second", {}))
    message = await store.dequeue(second, "c")
    assert message is not None and message.type == "Second"
    assert await store.dequeue(second, "c") is None
    assert await store.get_pending_count(first) == 1


# ---------------------------------------------------------------- leases and acknowledgements


async def test_leased_message_is_invisible_to_another_consumer(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    assert await store.dequeue(stream, "a") is not None
    assert await store.dequeue(stream, "b") is None
    assert await store.dequeue_batch(stream, "b", 10) == []
    assert await store.get_pending_count(stream) == 1


async def test_each_message_goes_to_one_of_two_consumers(store: Any) -> None:
    stream = name()
    batch = messages(4)
    await store.enqueue_batch(stream, batch)
    a = await store.dequeue_batch(stream, "a", 2)
    b = await store.dequeue_batch(stream, "b", 5)
    assert [m.id for m in a + b] == [e.id for e in batch]
    assert {m.consumer_id for m in a} == {"a"} and {m.consumer_id for m in b} == {"b"}


async def test_acknowledge_returns_true_then_false(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    message = await store.dequeue(stream, "c")
    assert message is not None
    assert await store.acknowledge(message) is True
    assert await store.acknowledge(message) is False
    assert await store.get_pending_count(stream) == 0
    assert await store.dequeue(stream, "c") is None


async def test_acknowledge_by_id_and_by_id_string(store: Any) -> None:
    stream = name()
    await store.enqueue_batch(stream, messages(2))
    first, second = await store.dequeue_batch(stream, "c", 2)
    assert await store.acknowledge(first.id) is True
    assert await store.acknowledge(str(second.id)) is True
    assert await store.get_pending_count(stream) == 0


async def test_acknowledge_of_unknown_id_is_false(store: Any) -> None:
    assert await store.acknowledge(uuid.uuid4()) is False
    assert await store.acknowledge_batch([uuid.uuid4(), uuid.uuid4()]) == 0


async def test_acknowledge_batch_counts_what_it_acknowledged(store: Any) -> None:
    stream = name()
    await store.enqueue_batch(stream, messages(5))
    leased = await store.dequeue_batch(stream, "c", 5)
    assert await store.acknowledge(leased[0]) is True
    assert await store.acknowledge_batch([*leased, uuid.uuid4()]) == 4
    assert await store.acknowledge_batch(leased) == 0
    assert await store.acknowledge_batch([]) == 0
    assert await store.get_pending_count(stream) == 0


async def test_expired_lease_makes_the_message_visible_again(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    first = await store.dequeue(stream, "a", LEASE)
    assert first is not None
    await asyncio.sleep(EXPIRE)
    second = await store.dequeue(stream, "b", 30)
    assert second is not None
    assert second.id == first.id
    assert second.delivery_count == 2
    assert second.consumer_id == "b"
    assert second.lease != first.lease


async def test_stale_receipt_cannot_acknowledge_nack_or_extend(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    stale = await store.dequeue(stream, "slow", LEASE)
    assert stale is not None
    await asyncio.sleep(EXPIRE)
    current = await store.dequeue(stream, "fast", 30)
    assert current is not None and current.id == stale.id

    assert await store.acknowledge(stale) is False
    assert await store.acknowledge_batch([stale]) == 0
    assert await store.nack(stale) is False
    assert await store.nack(stale, requeue=False) is False
    assert await store.extend_lease(stale, 60) is False
    # None of that disturbed the current holder: the message is still leased to it.
    assert await store.dequeue(stream, "other") is None
    assert await store.get_dead_letters(stream) == []
    assert await store.extend_lease(current, 60) is True
    assert await store.acknowledge(current) is True
    assert await store.get_pending_count(stream) == 0


async def test_expired_receipt_still_acts_until_another_consumer_takes_over(
    store: Any,
) -> None:
    """A consumer whose lease ran out may still finish first: its delivery is still the
    current one while nobody else has dequeued the message."""
    stream = name()
    await store.enqueue_batch(stream, messages(2))
    late_ack, late_extend = await store.dequeue_batch(stream, "slow", 2, LEASE)
    await asyncio.sleep(EXPIRE)
    assert await store.acknowledge(late_ack) is True
    assert await store.extend_lease(late_extend, 30) is True
    assert await store.dequeue(stream, "other") is None
    assert await store.get_pending_count(stream) == 1
    assert await store.acknowledge(late_extend) is True


async def test_bare_id_acts_on_the_current_lease(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    stale = await store.dequeue(stream, "slow", LEASE)
    assert stale is not None
    await asyncio.sleep(EXPIRE)
    current = await store.dequeue(stream, "fast", LEASE)
    assert current is not None
    assert await store.extend_lease(stale.id, 60) is True
    await asyncio.sleep(EXPIRE)
    assert await store.dequeue(stream, "other") is None  # the extension held
    assert await store.nack(stale.id) is True
    again = await store.dequeue(stream, "other")
    assert again is not None and again.id == stale.id and again.delivery_count == 3
    assert await store.acknowledge(stale.id) is True
    assert await store.get_pending_count(stream) == 0


async def test_extend_lease_keeps_the_message_invisible_past_its_timeout(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    message = await store.dequeue(stream, "a", LEASE)
    assert message is not None
    assert await store.extend_lease(message, 30) is True
    await asyncio.sleep(EXPIRE)
    assert await store.dequeue(stream, "b") is None
    assert await store.acknowledge(message) is True


async def test_extend_lease_accepts_a_timedelta_and_can_be_repeated(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    message = await store.dequeue(stream, "a", LEASE)
    assert message is not None
    assert await store.extend_lease(message, timedelta(seconds=LEASE)) is True
    assert await store.extend_lease(message, timedelta(seconds=30)) is True
    await asyncio.sleep(EXPIRE)
    assert await store.dequeue(stream, "b") is None
    assert await store.acknowledge(message) is True


async def test_extend_lease_of_acknowledged_message_is_false(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    message = await store.dequeue(stream, "a")
    assert message is not None
    await store.acknowledge(message)
    assert await store.extend_lease(message, 30) is False
    assert await store.extend_lease(uuid.uuid4(), 30) is False


# ---------------------------------------------------------------- nack


async def test_nack_requeues_the_message_in_its_place(store: Any) -> None:
    stream = name()
    batch = messages(3)
    await store.enqueue_batch(stream, batch)
    head = await store.dequeue(stream, "c")
    assert head is not None and head.id == batch[0].id
    assert await store.nack(head) is True
    again = await store.dequeue(stream, "c")
    assert again is not None
    assert again.id == batch[0].id
    assert again.delivery_count == 2
    rest = await store.dequeue_batch(stream, "c", 10)
    assert [m.id for m in rest] == [e.id for e in batch[1:]]


async def test_nacked_middle_message_comes_before_later_ones(store: Any) -> None:
    stream = name()
    batch = messages(4)
    await store.enqueue_batch(stream, batch)
    leased = await store.dequeue_batch(stream, "c", 2)
    assert await store.acknowledge(leased[0])
    assert await store.nack(leased[1])
    rest = await store.dequeue_batch(stream, "c", 10)
    assert [m.id for m in rest] == [e.id for e in batch[1:]]


async def test_delivery_count_grows_with_each_dequeue(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    counts = []
    for _ in range(4):
        message = await store.dequeue(stream, "c")
        assert message is not None
        counts.append(message.delivery_count)
        assert await store.nack(message) is True
    assert counts == [1, 2, 3, 4]


async def test_nack_twice_is_false_the_second_time(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    message = await store.dequeue(stream, "c")
    assert message is not None
    assert await store.nack(message) is True
    assert await store.nack(message) is False
    assert await store.acknowledge(message) is False
    assert await store.get_pending_count(stream) == 1


async def test_receipt_of_a_nacked_delivery_cannot_act_on_the_redelivery(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    old = await store.dequeue(stream, "c")
    assert old is not None
    assert await store.nack(old) is True
    new = await store.dequeue(stream, "c")
    assert new is not None and new.id == old.id
    assert await store.acknowledge(old) is False
    assert await store.nack(old) is False
    assert await store.extend_lease(old, 30) is False
    assert await store.dequeue(stream, "c") is None
    assert await store.acknowledge(new) is True


async def test_nack_with_delay_hides_the_message_until_then(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    message = await store.dequeue(stream, "c")
    assert message is not None
    assert await store.nack(message, delay=LEASE) is True
    assert await store.dequeue(stream, "c") is None
    assert await store.get_pending_count(stream) == 1
    await asyncio.sleep(EXPIRE)
    again = await store.dequeue(stream, "c")
    assert again is not None and again.id == message.id and again.delivery_count == 2


async def test_nack_with_timedelta_delay(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    message = await store.dequeue(stream, "c")
    assert message is not None
    assert await store.nack(message, delay=timedelta(minutes=5)) is True
    assert await store.dequeue(stream, "c") is None
    stats = await store.get_queue_stats(stream)
    assert (stats.visible, stats.delayed, stats.leased) == (0, 1, 0)


async def test_nack_of_unknown_id_is_false(store: Any) -> None:
    assert await store.nack(uuid.uuid4()) is False
    assert await store.nack(uuid.uuid4(), requeue=False) is False


# ---------------------------------------------------------------- delays


async def test_delayed_message_is_invisible_until_its_delay_passes(store: Any) -> None:
    stream = name()
    event = Event("Later", {})
    await store.enqueue(stream, event, delay=LEASE)
    assert await store.dequeue(stream, "c") is None
    assert await store.get_pending_count(stream) == 1
    await asyncio.sleep(EXPIRE)
    message = await store.dequeue(stream, "c")
    assert message is not None and message.id == event.id and message.delivery_count == 1


async def test_delayed_batch_and_timedelta_delay(store: Any) -> None:
    stream = name()
    await store.enqueue_batch(stream, messages(3), delay=timedelta(minutes=10))
    now = Event("Now", {})
    await store.enqueue(stream, now, delay=0)
    message = await store.dequeue(stream, "c")
    assert message is not None and message.id == now.id
    assert await store.dequeue(stream, "c") is None
    assert await store.get_pending_count(stream) == 4


# ---------------------------------------------------------------- re-enqueue, counts, purge


async def test_enqueueing_a_queued_id_again_is_a_no_op(store: Any) -> None:
    stream = name()
    event = Event("Job", {"v": 1})
    assert await store.enqueue(stream, event) == event.id
    assert await store.enqueue(stream, event) == event.id
    assert await store.enqueue_batch(stream, [event, Event("Other", {})]) != []
    assert await store.get_pending_count(stream) == 2
    first = await store.dequeue(stream, "c")
    assert first is not None and first.id == event.id and first.data == {"v": 1}


async def test_enqueueing_a_leased_id_again_does_not_redeliver_it(store: Any) -> None:
    stream = name()
    event = Event("Job", {})
    await store.enqueue(stream, event)
    leased = await store.dequeue(stream, "a")
    assert leased is not None
    assert await store.enqueue(stream, event) == event.id
    assert await store.dequeue(stream, "b") is None
    assert await store.get_pending_count(stream) == 1
    assert await store.acknowledge(leased) is True


async def test_same_id_twice_in_one_enqueued_batch_is_queued_once(store: Any) -> None:
    stream = name()
    other, event = Event("Other", {}), Event("Job", {})
    assert await store.enqueue_batch(stream, [other, event, event]) == [
        other.id,
        event.id,
        event.id,
    ]
    assert await store.get_pending_count(stream) == 2
    got = await store.dequeue_batch(stream, "c", 10)
    assert [m.id for m in got] == [other.id, event.id]


# Large batches: PostgreSQL sends them by COPY, which cannot skip a known id; the same
# promises hold (a known id is skipped, the rest queued once each, in order).
LARGE = 200


async def test_large_batch_with_known_and_repeated_ids_queues_each_once_in_order(
    store: Any,
) -> None:
    stream = name()
    batch = messages(LARGE)
    await store.enqueue_batch(stream, batch[50:60])  # already queued: skipped
    leased = await store.dequeue(stream, "a")  # already leased: not queued again
    assert leased is not None and leased.id == batch[50].id
    again = [*batch, batch[0], batch[199]]  # repeated within the batch: queued once
    assert await store.enqueue_batch(stream, again) == [e.id for e in again]
    assert await store.get_pending_count(stream) == LARGE
    delivered = await store.dequeue_batch(stream, "b", 500)
    expected = [e.id for e in batch[51:60]] + [e.id for e in batch[:50] + batch[60:]]
    assert [m.id for m in delivered] == expected


async def test_large_delayed_batch_is_invisible_until_its_delay_passes(store: Any) -> None:
    stream = name()
    await store.enqueue_batch(stream, messages(LARGE), delay=LEASE)
    assert await store.dequeue(stream, "c") is None
    assert await store.get_pending_count(stream) == LARGE
    await asyncio.sleep(EXPIRE)
    assert len(await store.dequeue_batch(stream, "c", 500)) == LARGE


async def test_waiting_dequeue_is_woken_by_a_large_batch(store: Any) -> None:
    stream = name()

    async def produce() -> None:
        await asyncio.sleep(0.2)
        await store.enqueue_batch(stream, messages(LARGE))

    started = time.monotonic()
    got, _ = await asyncio.gather(store.dequeue_batch(stream, "c", 10, wait=10), produce())
    assert [m.data["n"] for m in got] == list(range(len(got))) and got
    assert time.monotonic() - started < 5  # liveness: woken, not left to wait out the 10 s


async def test_pending_count_includes_visible_delayed_and_leased(store: Any) -> None:
    stream = name()
    await store.enqueue_batch(stream, messages(3))
    await store.enqueue(stream, Event("Delayed", {}), delay=60)
    leased = await store.dequeue(stream, "c")
    assert leased is not None
    dead = await store.dequeue(stream, "c")
    assert dead is not None
    await store.nack(dead, requeue=False)
    assert await store.get_pending_count(stream) == 3


async def test_queue_stats_count_each_state(store: Any) -> None:
    stream = name()
    await store.enqueue_batch(stream, messages(4))
    await store.enqueue_batch(stream, messages(2), delay=60)
    leased = await store.dequeue_batch(stream, "c", 2)
    await store.nack(leased[1], requeue=False)
    stats = await store.get_queue_stats(stream)
    assert stats.stream == stream
    assert (stats.visible, stats.delayed, stats.leased, stats.dead) == (2, 2, 1, 1)
    assert stats.oldest_age is not None and stats.oldest_age >= 0


async def test_queue_stats_of_empty_queue(store: Any) -> None:
    stats = await store.get_queue_stats(name())
    assert (stats.visible, stats.delayed, stats.leased, stats.dead) == (0, 0, 0, 0)
    assert stats.oldest_age is None


async def test_purge_queue_deletes_every_message_but_not_dead_letters(store: Any) -> None:
    stream, other = name(), name()
    await store.enqueue_batch(stream, messages(5))
    await store.enqueue(stream, Event("Delayed", {}), delay=60)
    await store.enqueue(other, Event("Other", {}))
    leased = await store.dequeue_batch(stream, "c", 2)
    await store.nack(leased[0], requeue=False)
    assert await store.purge_queue(stream) == 5
    assert await store.get_pending_count(stream) == 0
    assert await store.dequeue(stream, "c") is None
    assert await store.acknowledge(leased[1]) is False
    assert len(await store.get_dead_letters(stream)) == 1
    assert await store.get_pending_count(other) == 1
    assert await store.purge_queue(stream) == 0


# ---------------------------------------------------------------- waiting


async def test_wait_on_empty_queue_returns_none_after_about_the_wait(store: Any) -> None:
    stream = name()
    started = time.monotonic()
    assert await store.dequeue(stream, "c", wait=0.3) is None
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 5
    started = time.monotonic()
    assert await store.dequeue_batch(stream, "c", 5, wait=timedelta(seconds=0.3)) == []
    assert time.monotonic() - started >= 0.25


async def test_wait_returns_at_once_when_a_message_is_there(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    started = time.monotonic()
    assert await store.dequeue(stream, "c", wait=10) is not None
    assert time.monotonic() - started < 5


async def test_waiting_dequeue_is_woken_by_an_enqueue(store: Any) -> None:
    stream = name()
    event = Event("Job", {})

    async def produce() -> None:
        await asyncio.sleep(0.2)
        await store.enqueue(stream, event)

    started = time.monotonic()
    message, _ = await asyncio.gather(store.dequeue(stream, "c", wait=10), produce())
    assert message is not None and message.id == event.id
    assert time.monotonic() - started < 5  # liveness: woken, not left to wait out the 10 s


async def test_waiting_batch_dequeue_is_woken_by_an_enqueue(
    make_store: Any, store_kind: str
) -> None:
    consumer_store = await make_store()
    # PostgreSQL: the producer is another store (another pool) on the same schema.
    producer_store = await make_store() if store_kind == "postgres" else consumer_store
    stream = name()

    async def produce() -> None:
        await asyncio.sleep(0.2)
        await producer_store.enqueue_batch(stream, messages(3))

    started = time.monotonic()
    got, _ = await asyncio.gather(consumer_store.dequeue_batch(stream, "c", 10, wait=10), produce())
    assert 1 <= len(got) <= 3
    assert time.monotonic() - started < 5


async def test_waiting_dequeue_sees_a_delayed_message_become_visible(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Later", {}), delay=LEASE)
    started = time.monotonic()
    message = await store.dequeue(stream, "c", wait=10)
    assert message is not None
    assert time.monotonic() - started < 5


async def test_waiting_dequeue_sees_an_expired_lease(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    first = await store.dequeue(stream, "a", LEASE)
    assert first is not None
    started = time.monotonic()
    again = await store.dequeue(stream, "b", wait=10)
    assert again is not None and again.id == first.id
    assert time.monotonic() - started < 5


async def test_one_message_wakes_exactly_one_of_several_waiting_consumers(store: Any) -> None:
    stream = name()
    event = Event("Job", {})

    async def produce() -> None:
        await asyncio.sleep(0.2)
        await store.enqueue(stream, event)

    *got, _ = await asyncio.gather(
        *(store.dequeue(stream, f"c{i}", 30, wait=1.5) for i in range(5)), produce()
    )
    winners = [m for m in got if m is not None]
    assert [m.id for m in winners] == [event.id]
    assert winners[0].delivery_count == 1


async def test_acknowledgements_of_a_waiting_dequeue_are_not_redelivered(store: Any) -> None:
    stream = name()
    await store.enqueue_batch(stream, messages(2))
    leased = await store.dequeue_batch(stream, "c", 2, LEASE)
    assert len(leased) == 2
    # The queue is empty, so this call waits past the previous batch's leases: the
    # acknowledgements it carries must not let those messages come back to it.
    again = await store.dequeue_batch(stream, "c", 2, 30, wait=1.0, acknowledge=leased)
    assert again == []
    assert await store.get_pending_count(stream) == 0


async def test_waiting_consumer_ignores_other_streams(store: Any) -> None:
    stream, other = name(), name()

    async def produce() -> None:
        await asyncio.sleep(0.1)
        await store.enqueue(other, Event("Other", {}))

    message, _ = await asyncio.gather(store.dequeue(stream, "c", wait=0.5), produce())
    assert message is None
    assert await store.get_pending_count(other) == 1


# ---------------------------------------------------------------- acknowledge= on dequeue


async def test_dequeue_batch_acknowledges_the_previous_batch(store: Any) -> None:
    stream = name()
    batch = messages(6)
    await store.enqueue_batch(stream, batch)
    first = await store.dequeue_batch(stream, "c", 3)
    second = await store.dequeue_batch(stream, "c", 3, acknowledge=first)
    assert [m.id for m in second] == [e.id for e in batch[3:]]
    assert await store.get_pending_count(stream) == 3
    assert await store.acknowledge_batch(first) == 0
    last = await store.dequeue_batch(stream, "c", 3, acknowledge=[m.id for m in second])
    assert last == []
    assert await store.get_pending_count(stream) == 0


async def test_acknowledge_on_dequeue_ignores_stale_receipts(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    stale = await store.dequeue_batch(stream, "slow", 1, LEASE)
    await asyncio.sleep(EXPIRE)
    current = await store.dequeue_batch(stream, "fast", 1, 30)
    assert [m.id for m in current] == [m.id for m in stale]
    assert await store.dequeue_batch(stream, "slow", 1, acknowledge=stale) == []
    assert await store.get_pending_count(stream) == 1
    assert await store.acknowledge_batch(current) == 1


# ---------------------------------------------------------------- concurrency


async def test_concurrent_consumers_process_each_message_exactly_once(store: Any) -> None:
    stream = name()
    total = 3000
    ids = []
    for start in range(0, total, 500):
        chunk = [Event("Job", {"n": n}) for n in range(start, start + 500)]
        ids.extend(await store.enqueue_batch(stream, chunk))
    processed: list[uuid.UUID] = []
    sizes = [1, 5, 20, 50, 1, 5, 20, 50, 20, 50]

    async def consumer(index: int, size: int) -> None:
        fold_acks = index % 2 == 0
        previous: list[QueuedEvent] = []
        while True:
            if fold_acks:
                batch = await store.dequeue_batch(
                    stream, f"c{index}", size, 30, acknowledge=previous
                )
            else:
                batch = await store.dequeue_batch(stream, f"c{index}", size, 30)
            processed.extend(m.id for m in batch)
            if not fold_acks and batch:
                if len(batch) == 1:
                    assert await store.acknowledge(batch[0]) is True
                else:
                    assert await store.acknowledge_batch(batch) == len(batch)
            previous = batch
            if not batch:
                return

    await asyncio.gather(*(consumer(i, size) for i, size in enumerate(sizes)))
    counts = Counter(processed)
    assert len(processed) == total
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1
    assert await store.get_pending_count(stream) == 0
    assert await store.get_dead_letters(stream) == []


async def test_cancelled_consumer_messages_are_redelivered_after_the_timeout(store: Any) -> None:
    stream = name()
    batch = messages(3)
    await store.enqueue_batch(stream, batch)
    leased = asyncio.Event()

    async def doomed_consumer() -> None:
        await store.dequeue_batch(stream, "doomed", 10, LEASE)
        leased.set()
        await asyncio.Event().wait()  # "processing" forever, never acknowledging

    task = asyncio.create_task(doomed_consumer())
    await asyncio.wait_for(leased.wait(), 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await store.dequeue(stream, "survivor") is None
    await asyncio.sleep(EXPIRE)
    again = await store.dequeue_batch(stream, "survivor", 10)
    assert [m.id for m in again] == [e.id for e in batch]
    assert all(m.delivery_count == 2 for m in again)
    assert await store.acknowledge_batch(again) == 3


async def test_cancelled_waiting_dequeue_loses_no_message(store: Any) -> None:
    stream = name()
    waiter = asyncio.create_task(store.dequeue(stream, "doomed", LEASE, wait=10))
    await asyncio.sleep(0.1)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    event = Event("Job", {})
    await store.enqueue(stream, event)
    message = await store.dequeue(stream, "survivor", wait=5)
    assert message is not None and message.id == event.id
    assert await store.acknowledge(message) is True
