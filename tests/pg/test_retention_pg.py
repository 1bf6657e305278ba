"""Retention, configuration and health against PostgreSQL only: a big trim in batches while
appends and a tailing reader go on, the backoff SQL at its extremes (and equal to its
in-memory twin), and health when the store cannot be read or callers wait for the pool."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from typing import Any

import pgstreams
from pgstreams import (
    DeadLetterSettings,
    Event,
    PostgresOptions,
    RetentionPolicy,
    StreamConfiguration,
    _core,
)
from pgstreams.configuration import backoff_seconds
from pgstreams.durations import MAX_DURATION_SECONDS
from support import run_sql

BIG = 20_000
KEEP = 5_000


def events(count: int) -> list[Event]:
    return [Event("E", {"i": i, "pad": "x" * 200}) for i in range(count)]


async def test_a_big_trim_runs_in_batches_while_appends_and_readers_go_on(
    pg_store: pgstreams.PostgresEventStore,
) -> None:
    store = pg_store
    big, live = "big", "live"
    for _ in range(BIG // 1000):
        await store.append_batch(big, events(1000))
    await store.set_retention_policy(RetentionPolicy(big, max_event_count=KEEP))
    start_head = await store.get_head_position()

    stop = asyncio.Event()
    appended: dict[str, list[int]] = {big: [], live: []}
    heads: list[int] = []
    seen: list[tuple[int, str, int]] = []

    async def append(stream: str) -> None:
        while not stop.is_set():
            appended[stream].extend(await store.append_batch(stream, events(10)))

    async def tail() -> None:
        # Follows the global feed from the head at the start: it must see every event
        # appended meanwhile, once, in position order, whatever the trim deletes behind it.
        last = start_head
        while not stop.is_set() or last < await store.get_head_position():
            async for event in store.read_all(after_position=last):
                seen.append((event.position, event.stream, event.offset))
                last = event.position
            heads.append(await store.get_head_position())
            await asyncio.sleep(0.01)

    workers = [asyncio.create_task(append(big)), asyncio.create_task(append(live))]
    reader = asyncio.create_task(tail())
    await asyncio.sleep(0.1)
    report = await store.apply_retention(batch_size=500)
    stop.set()
    await asyncio.gather(*workers)
    async with asyncio.timeout(60):
        await reader

    # The plan bound was the version when it ran: everything before its newest KEEP events.
    [trim] = report.streams
    assert trim.deleted == report.events_deleted
    assert report.events_deleted >= BIG - KEEP
    # Appends went on: each stream's offsets stayed gap-free and in order.
    for stream, offsets in appended.items():
        assert offsets, f"no append to {stream} finished during the trim"
        first = BIG if stream == big else 0
        assert offsets == list(range(first, first + len(offsets)))
    # What stays of the big stream is one run of offsets up to its version.
    remaining = [e.offset async for e in store.read_stream(big)]
    version = await store.get_stream_version(big)
    assert remaining == list(range(version + 1 - len(remaining), version + 1))
    assert remaining[0] == trim.deleted
    # The tailing reader saw each new event once, in position order; the head never went back.
    positions = [position for position, _, _ in seen]
    assert positions == sorted(set(positions))
    assert len(seen) == sum(len(offsets) for offsets in appended.values())
    for stream in (big, live):
        assert [o for _, s, o in seen if s == stream] == appended[stream]
    assert heads == sorted(heads)


async def test_backoff_sql_never_overflows_and_equals_its_twin(
    pg_store: pgstreams.PostgresEventStore, pg_dsn: str
) -> None:
    schema = pg_store.options.schema_name
    cases = list(
        itertools.product(
            [0.0, 1e-6, 0.2, 3.0, 86_400.0, MAX_DURATION_SECONDS],  # retry delay
            [1.0, 1.0000001, 1.5, 2.0, 1000.0],  # multiplier
            [None, 0.5, 60.0],  # max retry delay
            [0, 1, 2, 3, 40, 2**31 - 1],  # delivery count
        )
    )
    select = ", ".join(
        f'"{schema}".backoff_seconds(${4 * i + 1}::float8, ${4 * i + 2}::float8, '
        f"${4 * i + 3}::float8, ${4 * i + 4}::integer)"
        for i in range(len(cases))
    )
    params: list[Any] = [value for case in cases for value in case]
    [row] = await run_sql(pg_dsn, f"SELECT {select}", params)
    for case, from_sql in zip(cases, row, strict=True):
        assert from_sql == backoff_seconds(*case) or abs(
            from_sql - backoff_seconds(*case)
        ) <= 1e-9 * max(1.0, from_sql), case


async def test_retry_delay_of_the_largest_configuration(
    pg_store: pgstreams.PostgresEventStore, pg_dsn: str
) -> None:
    schema = pg_store.options.schema_name
    await pg_store.set_stream_configuration(
        StreamConfiguration(
            "q",
            dead_letter_queue=DeadLetterSettings(
                retry_delay=timedelta(days=36_500),
                enable_exponential_backoff=True,
                backoff_multiplier=1000,
            ),
        )
    )
    [(seconds,)] = await run_sql(
        pg_dsn,
        f"SELECT extract(epoch FROM \"{schema}\".retry_delay('q', 2147483647))::float8",
    )
    assert seconds == MAX_DURATION_SECONDS


async def test_health_is_unhealthy_when_the_store_cannot_be_read(
    pg_options: PostgresOptions, pg_dsn: str
) -> None:
    async with pgstreams.connect(pg_options, command_timeout=0.5) as store:
        await store.append("s", Event("E", {}))
        locker = await _core.Session.open(PostgresOptions(pg_dsn).to_core_config(), None)
        try:
            await locker.execute(
                f'BEGIN; LOCK TABLE "{pg_options.schema_name}".streams IN ACCESS EXCLUSIVE MODE'
            )
            health = await store.health()
        finally:
            await locker.execute("ROLLBACK")
            await locker.close()
        assert health.status == "unhealthy"
        assert health.error is not None and health.reasons[0].startswith("the store could not")
        assert health.streams == () and health.pool.max_size == 20
        assert (await store.health()).status == "healthy"  # once the lock is gone


async def test_health_is_degraded_while_callers_wait_for_the_pool(
    pg_options: PostgresOptions, pg_dsn: str
) -> None:
    async with pgstreams.connect(pg_options, max_pool_size=1) as store:
        await store.append("s", Event("E", {}))
        locker = await _core.Session.open(PostgresOptions(pg_dsn).to_core_config(), None)
        try:
            await locker.execute(
                f'BEGIN; LOCK TABLE "{pg_options.schema_name}".streams IN ACCESS EXCLUSIVE MODE'
            )
            blocked = asyncio.create_task(store.append("s", Event("E", {})))  # holds the pool
            await asyncio.sleep(0.2)
            waiting = asyncio.create_task(store.get_stream_version("s"))  # waits for it
            for _ in range(100):
                if store.pool_status()["waiting"]:
                    break
                await asyncio.sleep(0.01)
            checking = asyncio.create_task(store.health())
            await asyncio.sleep(0.1)
        finally:
            await locker.execute("ROLLBACK")
            await locker.close()
        health = await checking
        await asyncio.gather(blocked, waiting)
        assert health.status == "degraded"
        assert health.pool.waiting >= 1
        assert any("wait for a pooled connection" in reason for reason in health.reasons)
