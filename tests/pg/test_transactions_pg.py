"""Transactions against a real server: the caller's own SQL commits and rolls back with the
store's writes, no deadlock between transactions locking the same streams in opposite orders,
the gap-safe feed under transactional writers, and no connection left inside a transaction."""

from __future__ import annotations

import asyncio
import gc
import random
import uuid
from typing import Any

import pytest

import pgstreams
from pgstreams import ConcurrencyError, DatabaseError, Event, PostgresOptions
from support import eventually, run_sql


async def make_read_model(store: pgstreams.PostgresEventStore) -> str:
    table = f'"{store.options.schema_name}".totals'
    async with store.transaction() as tx:
        await tx.execute(f"CREATE TABLE {table} (account text PRIMARY KEY, total bigint NOT NULL)")
    return table


async def test_the_callers_rows_commit_with_the_events_and_the_offset(
    pg_store: pgstreams.PostgresEventStore,
) -> None:
    table = await make_read_model(pg_store)
    await pg_store.append_batch("deposits", [Event("Deposited", {"amount": n}) for n in (5, 7)])
    async with pg_store.transaction() as tx:
        upserted = await tx.execute(
            f"INSERT INTO {table} VALUES ($1, $2) "
            f"ON CONFLICT (account) DO UPDATE SET total = {table}.total + $2",
            "acct-1",
            12,
        )
        rows = await tx.fetch(f"SELECT account, total FROM {table} WHERE account = $1", "acct-1")
        tx.commit_offset("deposits", "totals", 2, expected=None)
        tx.append("audit", Event("Projected", {"rows": upserted}))
    assert (upserted, rows) == (1, [("acct-1", 12)])
    async with pg_store.transaction() as tx:
        assert await tx.fetch(f"SELECT total FROM {table}") == [(12,)]
    assert await pg_store.get_committed_offset("deposits", "totals") == 2


async def test_a_conflict_rolls_back_the_callers_rows_too(
    pg_store: pgstreams.PostgresEventStore,
) -> None:
    table = await make_read_model(pg_store)
    await pg_store.append_batch("c", [Event("E", {})] * 1)
    with pytest.raises(ConcurrencyError):
        async with pg_store.transaction() as tx:
            await tx.execute(f"INSERT INTO {table} VALUES ('acct-1', 1)")
            for stream in ("a", "b"):
                tx.append(stream, Event("E", {}))
            tx.enqueue("outbox", Event("Mail", {}))
            tx.append("c", Event("E", {}), expected_version=5)
    async with pg_store.transaction() as tx:
        assert await tx.fetch(f"SELECT count(*) FROM {table}") == [(0,)]
    assert await pg_store.get_stream_version("a") == -1
    assert await pg_store.get_pending_count("outbox") == 0


async def test_a_failing_statement_of_the_caller_fails_the_transaction(
    pg_store: pgstreams.PostgresEventStore,
) -> None:
    with pytest.raises(DatabaseError) as raised:
        async with pg_store.transaction() as tx:
            tx.append("a", Event("E", {}))
            await tx.execute("SELECT 1 / $1::int", 0)
    assert raised.value.sqlstate == "22012"
    assert await pg_store.get_stream_version("a") == -1


async def test_opposite_orders_many_times_never_deadlock(
    pg_store: pgstreams.PostgresEventStore,
) -> None:
    streams = [f"s{i}" for i in range(4)]
    committed = 0

    async def transfer(order: list[str]) -> None:
        nonlocal committed
        async with pg_store.transaction() as tx:
            for stream in order:
                tx.append(stream, Event("Moved", {}))
            tx.commit_position("movers", 0)
        committed += 1

    rng = random.Random(3)
    for _ in range(40):
        orders = [rng.sample(streams, len(streams)) for _ in range(4)]
        orders.append(list(reversed(orders[0])))
        await asyncio.gather(*(transfer(order) for order in orders))
    assert committed == 200
    assert [await pg_store.get_stream_version(s) for s in streams] == [199] * 4


async def test_the_feed_stays_gap_safe_under_transactional_writers(
    pg_options: PostgresOptions,
) -> None:
    """Writers append to several streams per transaction (some rolled back, some slow to
    commit); a reader tailing the feed sees each committed event exactly once, in position
    order, and nothing rolled back."""
    rng = random.Random(11)
    async with pgstreams.connect(pg_options, read_batch_size=5) as store:
        committed: set[uuid.UUID] = set()
        done = asyncio.Event()

        async def writer(number: int) -> None:
            for round_ in range(10):
                batch = {
                    f"w{number}-{k}": [Event("E", {"r": round_}) for _ in range(rng.randint(1, 3))]
                    for k in range(rng.randint(1, 3))
                }
                rollback = rng.random() < 0.25
                try:
                    async with store.transaction() as tx:
                        for stream, events in batch.items():
                            tx.append_batch(stream, events)
                        await asyncio.sleep(rng.uniform(0, 0.01))
                        if rollback:
                            raise LookupError
                except LookupError:
                    continue
                committed.update(e.id for events in batch.values() for e in events)

        seen: list[pgstreams.StoredEvent] = []

        async def reader() -> None:
            position = None
            while True:
                finished = done.is_set()
                async for event in store.read_all(position):
                    seen.append(event)
                    position = event.position
                if finished:
                    return
                await asyncio.sleep(0.002)

        reading = asyncio.create_task(reader())
        await asyncio.gather(*(writer(n) for n in range(6)))
        done.set()
        await reading
    positions = [e.position for e in seen]
    assert positions == sorted(set(positions))
    assert {e.id for e in seen} == committed


def idle_in_transaction(dsn: str, pids: list[int]) -> Any:
    """Which of these backends sit inside a transaction."""
    return run_sql(
        dsn,
        "SELECT pid FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' "
        "AND pid = ANY($1)",
        [pids],
    )


async def test_a_cancelled_commit_leaves_no_connection_inside_a_transaction(
    pg_store: pgstreams.PostgresEventStore, pg_dsn: str
) -> None:
    backends: list[int] = []
    for delay in (0, 0.0005, 0.001, 0.002, 0.004, 0.008):

        async def transaction(delay: float = delay) -> None:
            async with pg_store.transaction() as tx:
                backends.append((await tx.fetch("SELECT pg_backend_pid()"))[0][0])
                tx.append_batch("a", [Event("E", {}) for _ in range(200)])
                tx.commit_offset("a", "g", 0)
                await asyncio.sleep(delay)

        task = asyncio.create_task(transaction())
        await asyncio.sleep(delay + 0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Whatever instant it was cancelled at, the stream is whole or absent.
        version = await pg_store.get_stream_version("a")
        assert (version + 1) % 200 == 0
    assert backends
    left = await eventually(lambda: idle_in_transaction(pg_dsn, backends), lambda r: r == [])
    assert left == []


async def test_a_transaction_dropped_unfinished_closes_its_connection(
    pg_store: pgstreams.PostgresEventStore, pg_dsn: str
) -> None:
    session = await pg_store._begin(None)
    [(pid,)] = await session.fetch("SELECT pg_backend_pid()", [])
    assert await idle_in_transaction(pg_dsn, [pid]) == [(pid,)]
    del session
    gc.collect()
    left = await eventually(lambda: idle_in_transaction(pg_dsn, [pid]), lambda r: r == [])
    assert left == []


async def test_the_server_ends_a_transaction_left_idle_past_its_timeout(
    pg_store: pgstreams.PostgresEventStore,
) -> None:
    session = await pg_store._begin(0.2)
    await session.execute("SELECT 1", [])
    await asyncio.sleep(0.6)
    with pytest.raises(DatabaseError):
        await session.execute("SELECT 1", [])
    await session.rollback()
    assert await pg_store.append("after", Event("E", {})) == 0


async def test_a_transaction_on_a_closed_store_is_refused(
    pg_options: PostgresOptions,
) -> None:
    store = await pgstreams.connect(pg_options)
    await store.close()
    with pytest.raises(pgstreams.StoreClosedError):
        async with store.transaction():
            pass
