"""The dead letter queue: nacked and poison messages, listing, redrive, deletion."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from pgstreams import DeadLetter, Event

from .helpers import name

LEASE = 0.2
EXPIRE = 0.35
MAX_DELIVERIES = 5  # the default of a stream without configuration


async def dead_letter(store: Any, stream: str, event: Event) -> None:
    """Queues ``event`` and nacks it straight into the dead letter queue."""
    await store.enqueue(stream, event)
    message = await store.dequeue(stream, "c")
    assert message is not None and message.id == event.id
    assert await store.nack(message, requeue=False) is True


async def test_no_dead_letters_for_a_fresh_stream(store: Any) -> None:
    assert await store.get_dead_letters(name()) == []


async def test_nack_without_requeue_dead_letters_the_message(store: Any) -> None:
    stream = name()
    event = Event(
        "Job",
        {"n": 1},
        metadata={"m": "x"},
        correlation_id="corr",
        causation_id="cause",
    )
    await dead_letter(store, stream, event)
    assert await store.get_pending_count(stream) == 0
    assert await store.dequeue(stream, "c") is None
    [dead] = await store.get_dead_letters(stream)
    assert isinstance(dead, DeadLetter)
    assert dead.id == event.id
    assert dead.stream == stream
    assert dead.type == "Job"
    assert dead.data == {"n": 1}
    assert dead.metadata == {"m": "x"}
    assert (dead.correlation_id, dead.causation_id) == ("corr", "cause")
    assert dead.delivery_count == 1
    assert dead.reason == "nacked"
    assert isinstance(dead.failed_at, datetime) and isinstance(dead.enqueued_at, datetime)
    assert dead.failed_at >= dead.enqueued_at


async def test_nack_by_id_without_requeue_dead_letters(store: Any) -> None:
    stream = name()
    event = Event("Job", {})
    await store.enqueue(stream, event)
    assert await store.dequeue(stream, "c") is not None
    assert await store.nack(event.id, requeue=False) is True
    assert [d.id for d in await store.get_dead_letters(stream)] == [event.id]


async def test_poison_message_is_dead_lettered_after_max_deliveries(store: Any) -> None:
    stream = name()
    poison, healthy = Event("Poison", {}), Event("Healthy", {})
    await store.enqueue(stream, poison)
    for attempt in range(1, MAX_DELIVERIES + 1):
        message = await store.dequeue(stream, "crashy", LEASE)
        assert message is not None and message.id == poison.id
        assert message.delivery_count == attempt
        await asyncio.sleep(EXPIRE)  # the consumer crashed: the lease runs out
    await store.enqueue(stream, healthy)
    nxt = await store.dequeue(stream, "c")
    assert nxt is not None and nxt.id == healthy.id
    assert await store.dequeue(stream, "c") is None
    [dead] = await store.get_dead_letters(stream)
    assert dead.id == poison.id
    assert dead.reason == "max_deliveries"
    assert dead.delivery_count == MAX_DELIVERIES
    assert await store.get_pending_count(stream) == 1


async def test_poison_message_alone_leaves_the_queue_empty(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Poison", {}))
    for _ in range(MAX_DELIVERIES):
        assert await store.dequeue(stream, "crashy", LEASE) is not None
        await asyncio.sleep(EXPIRE)
    assert await store.dequeue(stream, "c") is None
    assert await store.get_pending_count(stream) == 0
    assert [d.reason for d in await store.get_dead_letters(stream)] == ["max_deliveries"]


async def test_expired_last_delivery_is_dead_lettered_without_another_dequeue(
    store: Any,
) -> None:
    stream = name()
    event = Event("Poison", {})
    await store.enqueue(stream, event)
    for _ in range(MAX_DELIVERIES):
        assert await store.dequeue(stream, "crashy", LEASE) is not None
        await asyncio.sleep(EXPIRE)
    # Nobody dequeued since the last lease ran out: the counts already see a dead letter.
    assert await store.get_pending_count(stream) == 0
    stats = await store.get_queue_stats(stream)
    assert (stats.visible, stats.delayed, stats.leased, stats.dead) == (0, 0, 0, 1)
    [dead] = await store.get_dead_letters(stream)
    assert (dead.id, dead.reason, dead.delivery_count) == (event.id, "max_deliveries", 5)


async def test_a_spent_message_lists_the_same_before_and_after_it_is_moved(
    store: Any,
) -> None:
    """Reads report a message whose last lease expired as the dead letter it is, failed when
    that lease expired; the dequeue that later moves it changes nothing a reader sees."""
    stream = name()
    event = Event("Poison", {})
    await store.enqueue(stream, event)
    for _ in range(MAX_DELIVERIES):
        last = await store.dequeue(stream, "crashy", LEASE)
        assert last is not None
        await asyncio.sleep(EXPIRE)
    [before] = await store.get_dead_letters(stream)
    assert before.failed_at == last.lease_expires_at
    assert await store.dequeue(stream, "c") is None  # moves it to the dead letter queue
    assert await store.get_dead_letters(stream) == [before]
    stats = await store.get_queue_stats(stream)
    assert (stats.visible, stats.delayed, stats.leased, stats.dead) == (0, 0, 0, 1)


async def test_requeue_nack_on_the_last_delivery_dead_letters(store: Any) -> None:
    stream = name()
    event = Event("Job", {})
    await store.enqueue(stream, event)
    for attempt in range(1, MAX_DELIVERIES + 1):
        message = await store.dequeue(stream, "c")
        assert message is not None and message.delivery_count == attempt
        assert await store.nack(message) is True
    assert await store.dequeue(stream, "c") is None
    assert [d.id for d in await store.get_dead_letters(stream)] == [event.id]
    assert (await store.get_dead_letters(stream))[0].delivery_count == MAX_DELIVERIES


async def test_dead_letters_are_listed_per_stream_oldest_first_with_limit(store: Any) -> None:
    stream, other = name(), name()
    events = [Event("Job", {"n": i}) for i in range(4)]
    for event in events:
        await dead_letter(store, stream, event)
    await dead_letter(store, other, Event("Other", {}))
    assert [d.id for d in await store.get_dead_letters(stream)] == [e.id for e in events]
    assert [d.id for d in await store.get_dead_letters(stream, limit=2)] == [
        e.id for e in events[:2]
    ]
    assert len(await store.get_dead_letters(other)) == 1


async def test_redrive_moves_dead_letters_to_the_tail_with_a_fresh_count(store: Any) -> None:
    stream = name()
    dead = Event("Dead", {"x": 1})
    await dead_letter(store, stream, dead)
    waiting = Event("Waiting", {})
    await store.enqueue(stream, waiting)
    assert await store.redrive_dead_letters(stream) == 1
    assert await store.get_dead_letters(stream) == []
    assert await store.get_pending_count(stream) == 2
    first = await store.dequeue(stream, "c")
    second = await store.dequeue(stream, "c")
    assert first is not None and first.id == waiting.id
    assert second is not None and second.id == dead.id
    assert second.delivery_count == 1
    assert second.data == {"x": 1}


async def test_redriven_poison_message_gets_all_its_deliveries_again(store: Any) -> None:
    stream = name()
    event = Event("Poison", {})
    await store.enqueue(stream, event)
    for _ in range(MAX_DELIVERIES):
        message = await store.dequeue(stream, "c")
        assert message is not None
        await store.nack(message)
    assert await store.redrive_dead_letters(stream, [event.id]) == 1
    counts = []
    while (message := await store.dequeue(stream, "c")) is not None:
        counts.append(message.delivery_count)
        await store.nack(message)
    assert counts == list(range(1, MAX_DELIVERIES + 1))


async def test_redrive_only_the_given_ids(store: Any) -> None:
    stream = name()
    events = [Event("Job", {"n": i}) for i in range(3)]
    for event in events:
        await dead_letter(store, stream, event)
    assert await store.redrive_dead_letters(stream, [events[1].id]) == 1
    assert [d.id for d in await store.get_dead_letters(stream)] == [events[0].id, events[2].id]
    message = await store.dequeue(stream, "c")
    assert message is not None and message.id == events[1].id


async def test_redrive_of_nothing_is_zero(store: Any) -> None:
    stream = name()
    assert await store.redrive_dead_letters(stream) == 0
    assert await store.redrive_dead_letters(stream, [uuid.uuid4()]) == 0
    await dead_letter(store, stream, Event("Job", {}))
    assert await store.redrive_dead_letters(name()) == 0
    assert await store.redrive_dead_letters(stream, []) == 0
    assert len(await store.get_dead_letters(stream)) == 1


async def test_delete_dead_letters_by_id_and_all(store: Any) -> None:
    stream, other = name(), name()
    events = [Event("Job", {"n": i}) for i in range(3)]
    for event in events:
        await dead_letter(store, stream, event)
    await dead_letter(store, other, Event("Other", {}))
    assert await store.delete_dead_letters(stream, [events[0].id, uuid.uuid4()]) == 1
    assert [d.id for d in await store.get_dead_letters(stream)] == [e.id for e in events[1:]]
    assert await store.delete_dead_letters(stream) == 2
    assert await store.get_dead_letters(stream) == []
    assert await store.delete_dead_letters(stream) == 0
    assert len(await store.get_dead_letters(other)) == 1
    assert await store.redrive_dead_letters(stream) == 0


async def test_enqueueing_a_dead_lettered_id_is_a_no_op(store: Any) -> None:
    stream = name()
    event = Event("Job", {})
    await dead_letter(store, stream, event)
    assert await store.enqueue(stream, event) == event.id
    assert await store.get_pending_count(stream) == 0
    assert await store.dequeue(stream, "c") is None
    assert [d.id for d in await store.get_dead_letters(stream)] == [event.id]


async def test_dead_letters_count_in_queue_stats_not_pending(store: Any) -> None:
    stream = name()
    await dead_letter(store, stream, Event("Job", {}))
    await dead_letter(store, stream, Event("Job", {}))
    assert await store.get_pending_count(stream) == 0
    stats = await store.get_queue_stats(stream)
    assert stats.dead == 2
    assert (stats.visible, stats.delayed, stats.leased) == (0, 0, 0)
