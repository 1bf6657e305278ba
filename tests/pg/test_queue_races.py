"""The queue under races a careful user creates by accident: dequeues cancelled at every
instant, and the same id enqueued, nacked and redriven at once. No message may be burned,
lost or duplicated."""

from __future__ import annotations

import asyncio
import random
import uuid

from pgstreams import Event, PostgresEventStore

MESSAGES = 1000


async def test_cancelled_dequeues_burn_no_delivery(pg_store: PostgresEventStore) -> None:
    """Cancelling dequeues at random instants (most of them) loses nothing: what a cancelled
    call leased is released (its delivery not counted), so every message is received and
    acknowledged, none is dead-lettered, and none was delivered more than once per receipt
    that counted. The 60 s visibility timeout means a lease burned by a cancellation would
    not come back during the test."""
    rng = random.Random(11)
    events = [Event("Job", {"n": n}) for n in range(MESSAGES)]
    await pg_store.enqueue_batch("jobs", events)
    acknowledged: set[uuid.UUID] = set()
    cancelled = 0
    for _ in range(20000):
        if len(acknowledged) == MESSAGES:
            break
        task = asyncio.create_task(pg_store.dequeue_batch("jobs", "c", 1, 60.0, wait=0.05))
        if rng.random() < 0.9:
            await asyncio.sleep(rng.random() * 0.0015)
            task.cancel()
        try:
            batch = await task
        except asyncio.CancelledError:
            cancelled += 1
            continue
        assert await pg_store.acknowledge_batch(batch) == len(batch)
        acknowledged.update(m.id for m in batch)
    assert cancelled > 30  # the run did cancel dequeues in flight, many times
    assert acknowledged == {e.id for e in events}
    assert await pg_store.get_dead_letters("jobs") == []
    assert await pg_store.get_pending_count("jobs") == 0


async def test_enqueue_nack_and_redrive_of_one_id_at_once_lose_nothing(
    pg_store: PostgresEventStore,
) -> None:
    """Each id is enqueued again while its delivery is nacked to the dead letters and the
    dead letters are redriven, all at once. Whatever the interleaving, every message is
    afterwards in exactly one place (the queue or the dead letters), and all of them can
    still be received."""
    rng = random.Random(5)
    ids = [uuid.uuid4() for _ in range(60)]
    for chunk in range(0, len(ids), 20):
        await pg_store.enqueue_batch("q", [Event("J", {}, id=i) for i in ids[chunk : chunk + 20]])
        leased = await pg_store.dequeue_batch("q", "c", 20)
        actions = []
        for message in leased:
            actions.append(pg_store.nack(message, requeue=False))
            actions.append(pg_store.enqueue("q", Event("J", {}, id=message.id)))
            actions.append(pg_store.redrive_dead_letters("q", [message.id]))
        rng.shuffle(actions)
        await asyncio.gather(*actions)

    dead = {d.id for d in await pg_store.get_dead_letters("q", limit=1000)}
    stats = await pg_store.get_queue_stats("q")
    assert stats.dead == len(dead)
    assert stats.visible + stats.delayed + stats.leased + stats.dead == len(ids)
    await pg_store.redrive_dead_letters("q")
    received = await pg_store.dequeue_batch("q", "c", 1000)
    assert sorted(m.id for m in received) == sorted(ids)
