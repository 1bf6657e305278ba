"""The queue's "get" calls read and never write: a message whose last lease expired stays
unmarked in ``queue_events`` until a dequeue marks it dead, though every count and listing
already shows it as a dead letter."""

from __future__ import annotations

import asyncio

from pgstreams import Event, PostgresEventStore
from support import run_sql

LEASE, EXPIRE, MAX_DELIVERIES = 0.2, 0.35, 5


async def marked_dead(store: PostgresEventStore) -> list[bool]:
    """Per message row, whether it is marked a dead letter (written, not just reported)."""
    schema = store.options.schema_name
    rows = await run_sql(
        store.options.connection_string,
        f'SELECT failed_at IS NOT NULL FROM "{schema}".queue_events',
    )
    return [bool(row[0]) for row in rows]


async def test_gets_report_a_spent_message_without_marking_it(pg_store: PostgresEventStore) -> None:
    await pg_store.enqueue("jobs", Event("Poison", {}))
    for _ in range(MAX_DELIVERIES):
        assert await pg_store.dequeue("jobs", "crashy", LEASE) is not None
        await asyncio.sleep(EXPIRE)

    assert await pg_store.get_pending_count("jobs") == 0
    assert (await pg_store.get_queue_stats("jobs")).dead == 1
    [dead] = await pg_store.get_dead_letters("jobs")
    assert dead.reason == "max_deliveries"
    assert await marked_dead(pg_store) == [False]  # the reads wrote nothing

    assert await pg_store.dequeue("jobs", "c") is None  # the dequeue marks it
    assert await marked_dead(pg_store) == [True]
    assert await pg_store.get_dead_letters("jobs") == [dead]
