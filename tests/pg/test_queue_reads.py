"""The queue's "get" calls read and never write: a message whose last lease expired stays in
``queue_events`` until a dequeue moves it, though every count and listing already shows it as a
dead letter."""

from __future__ import annotations

import asyncio

from pgstreams import Event, PostgresEventStore
from support import run_sql

LEASE, EXPIRE, MAX_DELIVERIES = 0.2, 0.35, 5


async def rows(store: PostgresEventStore, table: str) -> int:
    schema = store.options.schema_name
    result = await run_sql(
        store.options.connection_string, f'SELECT count(*) FROM "{schema}".{table}'
    )
    return int(result[0][0])


async def test_gets_report_a_spent_message_without_moving_it(pg_store: PostgresEventStore) -> None:
    await pg_store.enqueue("jobs", Event("Poison", {}))
    for _ in range(MAX_DELIVERIES):
        assert await pg_store.dequeue("jobs", "crashy", LEASE) is not None
        await asyncio.sleep(EXPIRE)

    assert await pg_store.get_pending_count("jobs") == 0
    assert (await pg_store.get_queue_stats("jobs")).dead == 1
    assert [d.reason for d in await pg_store.get_dead_letters("jobs")] == ["max_deliveries"]
    # Nothing moved: the reads wrote nothing.
    assert await rows(pg_store, "queue_events") == 1
    assert await rows(pg_store, "dead_letter_queue") == 0

    assert await pg_store.dequeue("jobs", "c") is None  # the real move
    assert await rows(pg_store, "queue_events") == 0
    assert await rows(pg_store, "dead_letter_queue") == 1
    assert (await pg_store.get_queue_stats("jobs")).dead == 1
