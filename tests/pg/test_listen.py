"""The LISTEN connection behind waiting consumers: used, gone with its store (closed or
dropped), never opened after close; the waiter map; channels for long schema names."""

from __future__ import annotations

import asyncio
import gc
import uuid
from typing import Any

import asyncpg
import pytest

import pgstreams
from pgstreams import Event, PostgresOptions, StoreClosedError
from support import drop_schema, eventually, run_sql


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


# ---------------------------------------------------------------------------------------------
# Each test below gives its stores an application_name of their own, so that it sees only its
# own backends in pg_stat_activity.

# Generous: only there so that a regression fails the test instead of hanging it.
NEVER = 20.0


def with_application_name(dsn: str, name: str) -> str:
    """``dsn`` with ``application_name`` set, whichever connection-string form it is in."""
    if dsn.startswith(("postgresql://", "postgres://")):
        named = f"{dsn}{'&' if '?' in dsn else '?'}application_name={name}"
    elif ";" in dsn:
        named = f"{dsn.rstrip(';')};Application Name={name}"
    else:
        named = f"{dsn} application_name={name}"
    assert PostgresOptions(named).settings.application_name == name
    return named


def unique_application_name() -> str:
    return f"t_listen_{uuid.uuid4().hex[:12]}"


async def backends_of(dsn: str, application_name: str, *, listening: bool = False) -> int:
    """Server sessions of ``application_name``; with ``listening``, only the LISTEN ones."""
    rows = await run_sql(
        dsn,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
        + (" AND query LIKE 'LISTEN%'" if listening else ""),
        [application_name],
    )
    return int(rows[0][0])


async def listen_statements(dsn: str, application_name: str) -> list[str]:
    rows = await run_sql(
        dsn,
        "SELECT query FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'",
        [application_name],
    )
    return [str(row[0]) for row in rows]


async def the_listen_channel(dsn: str, application_name: str) -> str:
    """The channel the one LISTEN session of ``application_name`` listens on."""
    statements = await eventually(lambda: listen_statements(dsn, application_name), bool)
    assert len(statements) == 1, statements
    statement = statements[0]
    assert statement.startswith('LISTEN "') and statement.endswith('"'), statement
    return statement[len('LISTEN "') : -1]


def schema_of_length(length: int) -> str:
    name = (f"t_{uuid.uuid4().hex}" + "x" * length)[:length]
    assert len(name) == length
    return name


async def test_a_closed_store_never_opens_a_listen_connection(
    pg_dsn: str, schema_name: str
) -> None:
    app = unique_application_name()
    store = await pgstreams.connect(
        with_application_name(pg_dsn, app), schema_name=schema_name, max_pool_size=4
    )
    try:
        await store.enqueue("jobs", Event("Job", {}))  # used, but nobody has waited yet
        await store.close()
        with pytest.raises(StoreClosedError):
            await asyncio.wait_for(store.dequeue_batch("jobs", "c", 10, wait=1), NEVER)
        with pytest.raises(StoreClosedError):
            await asyncio.wait_for(store.dequeue("jobs", "c", wait=1), NEVER)
        # The core refuses too when called directly (past the Python-side check).
        with pytest.raises(StoreClosedError):
            await asyncio.wait_for(store._core.dequeue("jobs", "c", 10, 30.0, 1.0), NEVER)
        # Give a wrongly started LISTEN task ample time to connect, then look.
        await asyncio.sleep(1.5)
        assert await backends_of(pg_dsn, app, listening=True) == 0
        assert await eventually(lambda: backends_of(pg_dsn, app), lambda n: n == 0) == 0
    finally:
        await store.close()
        await drop_schema(pg_dsn, schema_name)


async def test_a_listen_connection_is_not_restarted_after_close(
    pg_dsn: str, schema_name: str
) -> None:
    app = unique_application_name()
    store = await pgstreams.connect(with_application_name(pg_dsn, app), schema_name=schema_name)
    try:
        assert await store.dequeue("jobs", "c", wait=0.2) is None
        listening = await eventually(
            lambda: backends_of(pg_dsn, app, listening=True), lambda n: n == 1
        )
        assert listening == 1
        await store.close()
        listening = await eventually(
            lambda: backends_of(pg_dsn, app, listening=True), lambda n: n == 0
        )
        assert listening == 0
        with pytest.raises(StoreClosedError):
            await asyncio.wait_for(store._core.dequeue("jobs", "c", 10, 30.0, 1.0), NEVER)
        await asyncio.sleep(1.5)
        assert await backends_of(pg_dsn, app, listening=True) == 0
    finally:
        await store.close()
        await drop_schema(pg_dsn, schema_name)


async def test_stores_dropped_without_close_leave_no_backend(pg_dsn: str, schema_name: str) -> None:
    app = unique_application_name()
    dsn = with_application_name(pg_dsn, app)
    stores: list[pgstreams.PostgresEventStore] = []
    try:
        for _ in range(10):
            stores.append(await pgstreams.connect(dsn, schema_name=schema_name, max_pool_size=2))
        for opened in stores:
            assert await opened.dequeue("jobs", "c", wait=0.2) is None
        # Every store's LISTEN task is up, as it stays for as long as its store lives.
        listening = await eventually(
            lambda: backends_of(pg_dsn, app, listening=True), lambda n: n == 10
        )
        assert listening == 10
        del opened
        stores.clear()
        gc.collect()
        listening = await eventually(
            lambda: backends_of(pg_dsn, app, listening=True), lambda n: n == 0
        )
        assert listening == 0
        assert await eventually(lambda: backends_of(pg_dsn, app), lambda n: n == 0) == 0
    finally:
        for opened in stores:
            await opened.close()
        await drop_schema(pg_dsn, schema_name)


async def test_the_waiter_map_holds_only_streams_being_waited_on(
    pg_store: pgstreams.PostgresEventStore,
) -> None:
    core = pg_store._core

    async def waited() -> int:
        return core._waited_streams()

    assert core._waited_streams() == 0
    # One at a time, 200 different streams.
    for number in range(200):
        assert await pg_store.dequeue(f"one-{number}", "c", wait=0.01) is None
    assert core._waited_streams() == 0
    # 200 different streams at once.
    waits = [
        asyncio.create_task(pg_store.dequeue(f"many-{number}", "c", wait=1))
        for number in range(200)
    ]
    await asyncio.sleep(0.3)
    assert 1 <= core._waited_streams() <= 200
    assert await asyncio.wait_for(asyncio.gather(*waits), NEVER) == [None] * 200
    assert core._waited_streams() == 0
    # One stream: one entry while waited on, also by several consumers; gone once woken.
    first = asyncio.create_task(pg_store.dequeue("jobs", "c1", wait=30))
    assert await eventually(waited, lambda n: n == 1) == 1
    second = asyncio.create_task(pg_store.dequeue("jobs", "c2", wait=30))
    await asyncio.sleep(0.2)
    assert core._waited_streams() == 1
    await pg_store.enqueue_batch("jobs", [Event("Job", {"n": 1}), Event("Job", {"n": 2})])
    got = await asyncio.wait_for(asyncio.gather(first, second), NEVER)
    assert sorted(message.data["n"] for message in got if message is not None) == [1, 2]
    assert core._waited_streams() == 0
    # A cancelled wait leaves no entry behind either.
    cancelled = asyncio.create_task(pg_store.dequeue("other", "c", wait=30))
    assert await eventually(waited, lambda n: n == 1) == 1
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(cancelled, NEVER)
    assert await eventually(waited, lambda n: n == 0) == 0


@pytest.mark.parametrize("length", [53, 54, 63])
async def test_long_schema_names_enqueue_and_wake_consumers(pg_dsn: str, length: int) -> None:
    schema = schema_of_length(length)
    app = unique_application_name()
    store = await pgstreams.connect(
        with_application_name(pg_dsn, app), schema_name=schema, listen_notify=True
    )
    observer = await asyncpg.connect(pg_dsn)
    try:
        waiting = asyncio.create_task(store.dequeue("jobs", "c", wait=30))
        # Listen on the very channel the store listens on: the enqueue must notify it, or
        # consumers would only ever be woken by polling.
        notified: asyncio.Queue[str] = asyncio.Queue()
        await observer.add_listener(
            await the_listen_channel(pg_dsn, app),
            lambda _connection, _pid, _channel, payload: notified.put_nowait(payload),
        )
        event = Event("Job", {"schema": schema})
        await store.enqueue("jobs", event)
        message = await asyncio.wait_for(waiting, NEVER)
        assert message is not None
        assert message.id == event.id
        assert message.data == {"schema": schema}
        payload = await asyncio.wait_for(notified.get(), NEVER)
        assert "jobs" in payload
    finally:
        await observer.close()
        await store.close()
        await drop_schema(pg_dsn, schema)


async def test_long_schema_names_sharing_a_prefix_do_not_share_a_channel(pg_dsn: str) -> None:
    shared = schema_of_length(60)
    schemas = [f"{shared}aaa", f"{shared}bbb"]
    apps = [unique_application_name(), unique_application_name()]
    stores = [
        await pgstreams.connect(with_application_name(pg_dsn, app), schema_name=schema)
        for app, schema in zip(apps, schemas, strict=True)
    ]
    observer = await asyncpg.connect(pg_dsn)
    try:
        waiting = [asyncio.create_task(store.dequeue("jobs", "c", wait=30)) for store in stores]
        channels = [await the_listen_channel(pg_dsn, app) for app in apps]
        assert channels[0] != channels[1]
        heard: dict[str, list[str]] = {channel: [] for channel in channels}
        arrived = asyncio.Event()

        def on_notification(_connection: Any, _pid: int, channel: str, payload: str) -> None:
            heard[channel].append(payload)
            arrived.set()

        for channel in channels:
            await observer.add_listener(channel, on_notification)
        events = [Event("Job", {"schema": schema}) for schema in schemas]
        # The second schema's enqueue commits first. Notifications arrive in commit order, so
        # by the time the first schema's arrives, one crossed over from the second would have.
        await stores[1].enqueue("jobs", events[1])
        got_second = await asyncio.wait_for(waiting[1], NEVER)
        await stores[0].enqueue("jobs", events[0])
        got_first = await asyncio.wait_for(waiting[0], NEVER)
        while not heard[channels[0]]:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), NEVER)
        # Each consumer got its own schema's message, and each channel heard one enqueue.
        assert got_first is not None and got_first.id == events[0].id
        assert got_second is not None and got_second.id == events[1].id
        assert len(heard[channels[0]]) == 1, heard
        assert len(heard[channels[1]]) == 1, heard
    finally:
        await observer.close()
        for store in stores:
            await store.close()
        for schema in schemas:
            await drop_schema(pg_dsn, schema)
