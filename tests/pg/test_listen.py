"""The LISTEN connection behind waiting consumers: used, and gone with its store."""

from __future__ import annotations

import asyncio

import pgstreams
from pgstreams import Event, PostgresOptions
from support import run_sql


async def listening_backends(dsn: str, channel: str) -> int:
    rows = await run_sql(
        dsn,
        "SELECT count(*) FROM pg_stat_activity WHERE query = $1",
        [f'LISTEN "{channel}"'],
    )
    return int(rows[0][0])


async def test_closing_the_store_closes_its_listen_connection(
    pg_options: PostgresOptions, pg_dsn: str
) -> None:
    channel = f"pgstreams_{pg_options.schema_name}"
    async with pgstreams.connect(pg_options) as store:
        waiting = asyncio.create_task(store.dequeue("jobs", "c", wait=10))
        await asyncio.sleep(0.3)
        assert await listening_backends(pg_dsn, channel) == 1
        await store.enqueue("jobs", Event("Job", {}))
        message = await asyncio.wait_for(waiting, 5)
        assert message is not None
    for _ in range(50):  # the server notices the closed socket within moments
        if await listening_backends(pg_dsn, channel) == 0:
            break
        await asyncio.sleep(0.05)
    assert await listening_backends(pg_dsn, channel) == 0


async def test_without_listen_notify_a_waiting_consumer_still_wakes(
    pg_options: PostgresOptions, pg_dsn: str
) -> None:
    channel = f"pgstreams_{pg_options.schema_name}"
    async with pgstreams.connect(pg_options, listen_notify=False) as store:
        waiting = asyncio.create_task(store.dequeue("jobs", "c", wait=10))
        await asyncio.sleep(0.2)
        await store.enqueue("jobs", Event("Job", {}))
        assert await asyncio.wait_for(waiting, 5) is not None
        assert await listening_backends(pg_dsn, channel) == 0
