"""Tests specific to the in-memory store (its shared behaviour is the contract suite's)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest

from pgstreams import (
    Event,
    EventStore,
    InMemoryEventStore,
    StoreClosedError,
)


async def collect(store: InMemoryEventStore, stream: str) -> list[int]:
    return [event.offset async for event in store.read_stream(stream)]


def test_implements_the_protocol() -> None:
    assert isinstance(InMemoryEventStore(), EventStore)


async def test_delete_events_hook_keeps_the_version() -> None:
    store = InMemoryEventStore()
    first = [Event("t", {"i": i}) for i in range(3)]
    await store.append_batch("s", first)
    await store.append_batch("other", [Event("t", {})])

    assert store._delete_events("s") == 3

    assert await collect(store, "s") == []
    assert await store.get_stream_version("s") == 2
    assert [s.stream for s in await store.list_streams()] == ["other", "s"]
    metadata = await store.get_stream_metadata("s")
    assert metadata is not None
    assert (metadata.length, metadata.first_offset, metadata.version) == (0, None, 2)
    assert [e.stream async for e in store.read_all()] == ["other"]
    # Offsets continue from the version, and the deleted ids may be used again.
    assert await store.append("s", first[0], expected_version=2) == 3
    assert await collect(store, "s") == [3]


async def test_results_are_copies() -> None:
    store = InMemoryEventStore()
    data = {"items": [1, 2], "nested": {"a": 1}}
    event = Event("t", data, metadata={"m": [1]})
    await store.append("s", event)
    await store.enqueue("q", event)
    data["items"].append(3)  # the caller's objects are not the store's

    (read,) = [e async for e in store.read_stream("s")]
    read.data["items"].append(99)
    read.metadata["m"].append(99)
    (again,) = [e async for e in store.read_stream("s")]
    assert again.data == {"items": [1, 2], "nested": {"a": 1}}
    assert again.metadata == {"m": [1]}

    queued = await store.dequeue("q", "c")
    assert queued is not None
    queued.data["nested"]["a"] = 2
    await store.nack(queued, requeue=False)
    (dead,) = await store.get_dead_letters("q")
    assert dead.data == {"items": [1, 2], "nested": {"a": 1}}


async def test_values_come_back_as_json_does() -> None:
    store = InMemoryEventStore()
    event_id = uuid.uuid4()
    await store.append("s", Event("t", {"tuple": (1, 2), "float": 1e16, "id": event_id}))
    (read,) = [e async for e in store.read_stream("s")]
    assert read.data == {"tuple": [1, 2], "float": 1e16, "id": str(event_id)}
    assert isinstance(read.data["float"], float)
    assert read.timestamp.tzinfo is UTC
    assert abs((datetime.now(UTC) - read.timestamp).total_seconds()) < 5


async def test_read_batch_size_and_appends_during_iteration() -> None:
    store = InMemoryEventStore(read_batch_size=2)
    await store.append_batch("s", [Event("t", {"i": i}) for i in range(5)])
    seen = []
    async for event in store.read_stream("s"):
        seen.append(event.offset)
        if event.offset == 2:
            store._delete_events("s")  # retention trimming the stream mid-read
            await store.append("s", Event("t", {}))
    # The batch in hand is finished, then the read goes on by offset: no repeats, no gaps
    # other than what was deleted.
    assert seen == [0, 1, 2, 3, 5]


async def test_waiting_dequeue_is_woken_by_enqueue() -> None:
    store = InMemoryEventStore()

    async def enqueue_later() -> None:
        await asyncio.sleep(0.2)
        await store.enqueue("q", Event("t", {}))

    started = time.monotonic()
    task = asyncio.create_task(enqueue_later())
    message = await store.dequeue("q", "c", wait=10)
    await task
    assert message is not None
    assert time.monotonic() - started < 2


async def test_waiting_dequeue_times_out_empty() -> None:
    store = InMemoryEventStore()
    started = time.monotonic()
    assert await store.dequeue_batch("q", "c", 10, wait=0.3) == []
    assert 0.25 < time.monotonic() - started < 2


async def test_close_wakes_waiting_consumers() -> None:
    store = InMemoryEventStore()
    waiting = asyncio.create_task(store.dequeue("q", "c", wait=10))
    await asyncio.sleep(0.05)
    await store.close()
    with pytest.raises(StoreClosedError, match="the store is closed"):
        await asyncio.wait_for(waiting, 2)


async def test_concurrent_consumers_never_share_a_message() -> None:
    store = InMemoryEventStore()
    ids = await store.enqueue_batch("q", [Event("t", {"i": i}) for i in range(200)])

    async def consume(name: str) -> list[uuid.UUID]:
        got: list[uuid.UUID] = []
        acks: list[object] = []
        while batch := await store.dequeue_batch("q", name, 7, acknowledge=acks, wait=0.1):
            got.extend(m.id for m in batch)
            acks = list(batch)
            await asyncio.sleep(0)
        await store.acknowledge_batch(acks)
        return got

    results = await asyncio.gather(*(consume(f"c{i}") for i in range(4)))
    delivered = [event_id for result in results for event_id in result]
    assert sorted(delivered) == sorted(ids)
    assert await store.get_pending_count("q") == 0
