"""A store's life around its calls: cancelling a call (a waiting dequeue, a running
statement) ends it on the client and on the server and burns no delivery; closing a store
with calls in flight ends every one of them and leaves no backend behind.

Each test gives its store an application_name of its own, so that it sees only its own
backends in pg_stat_activity."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import pgstreams
from pgstreams import (
    Event,
    EventStreamingError,
    InternalError,
    PostgresOptions,
    StoreClosedError,
    _core,
)
from support import drop_schema, eventually, run_sql

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


async def backends_of(dsn: str, application_name: str, where: str = "true") -> int:
    rows = await run_sql(
        dsn,
        f"SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND ({where})",
        [application_name],
    )
    return int(rows[0][0])


@pytest.fixture
def app() -> str:
    return f"t_life_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def app_store(
    pg_dsn: str, schema_name: str, app: str
) -> AsyncIterator[Callable[..., Awaitable[pgstreams.PostgresEventStore]]]:
    """``await app_store(**options)``: a store in this test's schema, connecting as ``app``;
    closed and the schema dropped after the test."""
    opened: list[pgstreams.PostgresEventStore] = []

    async def factory(**options: Any) -> pgstreams.PostgresEventStore:
        store = await pgstreams.connect(
            with_application_name(pg_dsn, app), schema_name=schema_name, **options
        )
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()
    await drop_schema(pg_dsn, schema_name)


async def test_cancelling_a_waiting_dequeue_ends_the_wait_and_burns_no_delivery(
    app_store: Callable[..., Awaitable[pgstreams.PostgresEventStore]],
) -> None:
    store = await app_store()

    async def waited() -> int:
        return store._core._waited_streams()

    waiting = asyncio.create_task(store.dequeue("jobs", "c1", wait=30))
    assert await eventually(waited, lambda n: n == 1) == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, NEVER)
    # The Rust side stopped waiting too (its subscription is gone) ...
    assert await eventually(waited, lambda n: n == 0) == 0
    # ... and does not take the next message for nobody.
    event = Event("Job", {"n": 1})
    await store.enqueue("jobs", event)
    message = await asyncio.wait_for(store.dequeue("jobs", "c2", wait=NEVER), NEVER)
    assert message is not None
    assert message.id == event.id
    assert message.delivery_count == 1
    assert message.consumer_id == "c2"

    # Timed out by the caller (wait_for cancels it): the same.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(store.dequeue("other", "c3", wait=30), 0.3)
    assert await eventually(waited, lambda n: n == 0) == 0


async def test_a_cancelled_dequeue_whose_statement_was_sent_releases_its_leases(
    app_store: Callable[..., Awaitable[pgstreams.PostgresEventStore]],
    pg_dsn: str,
    schema_name: str,
    app: str,
) -> None:
    store = await app_store()
    event = Event("Job", {"n": 1})
    await store.enqueue("jobs", event)
    # Hold the queue table locked so that the dequeue's statement, once sent, waits on the
    # server: cancelling the caller then happens mid-statement.
    locker = await _core.Session.open(PostgresOptions(pg_dsn).to_core_config(), None)
    try:
        await locker.execute("BEGIN")
        await locker.execute(f'LOCK TABLE "{schema_name}".queue_events IN ACCESS EXCLUSIVE MODE')
        taking = asyncio.create_task(
            store.dequeue("jobs", "c1", visibility_timeout=120, wait=NEVER)
        )
        blocked = await eventually(
            lambda: backends_of(pg_dsn, app, "wait_event_type = 'Lock'"), lambda n: n == 1
        )
        assert blocked == 1
        taking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(taking, NEVER)
    finally:
        await locker.execute("COMMIT")
        await locker.close()
    # The statement completed and leased the message to a caller who had gone: the lease is
    # released, so the message comes back now (not after 120 s) and that delivery is not counted.
    message = await asyncio.wait_for(store.dequeue("jobs", "c2", wait=NEVER), NEVER)
    assert message is not None
    assert message.id == event.id
    assert message.delivery_count == 1
    assert message.consumer_id == "c2"


async def test_a_cancelled_statement_is_cancelled_on_the_server(
    app_store: Callable[..., Awaitable[pgstreams.PostgresEventStore]],
    pg_dsn: str,
    app: str,
) -> None:
    store = await app_store(max_pool_size=1)
    # Prepared once beforehand, so that "active" below means executing, not being parsed.
    await store._core.query("SELECT pg_sleep($1)", [0.0])
    sleeping = "state = 'active' AND query LIKE '%pg_sleep($1)%'"

    async def sleep() -> Any:
        return await store._core.query("SELECT pg_sleep($1)", [30.0])

    running = asyncio.create_task(sleep())
    assert await eventually(lambda: backends_of(pg_dsn, app, sleeping), lambda n: n == 1) == 1
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, NEVER)
    # The pool's one connection comes back long before the 30 s statement would have ended:
    # the server was asked to cancel it.
    info = await asyncio.wait_for(store.ping(), 10)
    assert info["server_version"]
    assert await eventually(lambda: backends_of(pg_dsn, app, sleeping), lambda n: n == 0, 10) == 0
    assert await store._core.query("SELECT 41 + 1") == [(42,)]


async def test_cancelling_a_call_never_cancels_a_later_call_on_its_connection(
    app_store: Callable[..., Awaitable[pgstreams.PostgresEventStore]],
) -> None:
    """The cancel request sent for an abandoned statement travels on a connection of its
    own. If the statement has just ended (or not begun), the request must not land on the
    statement of the next call given that connection, which would fail with "canceling
    statement due to user request". The race needs the cancel to come about when the
    statement ends, hence many short ones, on a few stores at once."""
    stores = [await app_store(max_pool_size=1) for _ in range(4)]
    attempts = 150

    async def cancel_then_call(store: pgstreams.PostgresEventStore, seed: int) -> list[str]:
        rng = random.Random(seed)
        victims = []
        for attempt in range(attempts):
            abandoned = asyncio.ensure_future(store._core.query("SELECT pg_sleep(0.001)"))
            await asyncio.sleep(rng.uniform(0.0, 0.003))
            abandoned.cancel()
            await asyncio.wait_for(asyncio.gather(abandoned, return_exceptions=True), NEVER)
            try:
                await asyncio.wait_for(store._core.query("SELECT pg_sleep(0.02)"), NEVER)
            except EventStreamingError as error:
                victims.append(f"attempt {attempt}: {error!r}")
        return victims

    victims = [
        victim
        for victims_of_one in await asyncio.gather(
            *(cancel_then_call(store, seed) for seed, store in enumerate(stores))
        )
        for victim in victims_of_one
    ]
    total = attempts * len(stores)
    assert victims == [], f"{len(victims)} of {total} later calls failed: {victims[:3]}"


@pytest.mark.parametrize("moment", ["at_once", "mid_statement"])
async def test_closing_with_calls_in_flight_ends_them_all_and_leaves_no_backend(
    app_store: Callable[..., Awaitable[pgstreams.PostgresEventStore]],
    pg_dsn: str,
    schema_name: str,
    app: str,
    moment: str,
) -> None:
    store = await app_store(max_pool_size=4)
    await store.append_batch("seed", [Event("Seed", {"i": i}) for i in range(300)])

    async def read_stream() -> int:
        return len([event async for event in store.read_stream("seed")])

    async def read_all() -> int:
        return len([event async for event in store.read_all()])

    async def reads_until_closed() -> int:
        count = 0
        while True:  # ends with StoreClosedError once the store is closed
            count += await read_stream()

    # "mid_statement": appends wait on a lock, so the big append is sure to be running on the
    # server when the store closes (reads are not blocked by it).
    locker = await _core.Session.open(PostgresOptions(pg_dsn).to_core_config(), None)
    try:
        if moment == "mid_statement":
            await locker.execute("BEGIN")
            await locker.execute(f'LOCK TABLE "{schema_name}".events IN SHARE MODE')
        big = [Event("Big", {"i": i, "text": "x" * 100}) for i in range(5000)]
        calls: dict[str, Awaitable[Any]] = {
            **{f"dequeue-{n}": store.dequeue("jobs", f"c{n}", wait=60) for n in range(4)},
            "dequeue_batch": store.dequeue_batch("jobs", "c9", 10, wait=60),
            "append_batch": store.append_batch("big", big),
            "read_stream": read_stream(),
            "read_all": read_all(),
            "reads_until_closed": reads_until_closed(),
            "ping": store.ping(),
        }
        tasks = {name: asyncio.ensure_future(call) for name, call in calls.items()}
        if moment == "mid_statement":
            blocked = await eventually(
                lambda: backends_of(pg_dsn, app, "wait_event_type = 'Lock'"), lambda n: n == 1
            )
            assert blocked == 1
            await asyncio.sleep(0.3)  # the waiting consumers are well into their wait
        else:
            await asyncio.sleep(0)  # started, most not yet past getting a connection
        await store.close()
    finally:
        if moment == "mid_statement":
            await locker.execute("COMMIT")
        await locker.close()
    outcomes = dict(
        zip(
            tasks,
            await asyncio.wait_for(asyncio.gather(*tasks.values(), return_exceptions=True), NEVER),
            strict=True,
        )
    )
    for name, outcome in outcomes.items():
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, EventStreamingError), f"{name}: {outcome!r}"
            assert not isinstance(outcome, InternalError), f"{name}: {outcome!r}"
    # Consumers waiting when the store closed stopped waiting (they would wait 60 s).
    for name in [*(f"dequeue-{n}" for n in range(4)), "dequeue_batch", "reads_until_closed"]:
        assert isinstance(outcomes[name], StoreClosedError), f"{name}: {outcomes[name]!r}"
    # The batch was written whole or not at all.
    async with pgstreams.connect(pg_dsn, schema_name=schema_name) as other:
        written = [event async for event in other.read_stream("big")]
    if isinstance(outcomes["append_batch"], BaseException):
        assert len(written) in (0, len(big))
    else:
        assert outcomes["append_batch"] == list(range(len(big)))
        assert [event.id for event in written] == [event.id for event in big]
    # Every connection of the store (pool and LISTEN) is gone.
    assert await eventually(lambda: backends_of(pg_dsn, app), lambda n: n == 0) == 0
