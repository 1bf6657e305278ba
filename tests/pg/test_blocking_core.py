"""The core's calls for synchronous callers (``Core.blocking()``, used by the ``eventsourcing``
recorders) and strict appends: a blocked thread gets the same answers as an awaiting task, a
signal handler that raises interrupts the wait and cancels the statement, and a strict append
refuses an id stored before even when the call looks like a retry, alone, grouped or by COPY."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

import pgstreams
from pgstreams import DuplicateEventError, Event, PostgresOptions, _core
from support import eventually, run_sql


def batch_of(events: list[Event]) -> _core.EventBatch:
    return _core.EventBatch(events)


async def test_a_strict_append_refuses_a_retry_alone_grouped_and_by_copy(
    pg_options: PostgresOptions,
) -> None:
    async with pgstreams.connect(pg_options) as store:
        core = store._core
        small = [Event("E", {"n": n}) for n in range(3)]
        large = [Event("E", {"n": n}) for n in range(100)]  # COPY's path
        await store.append_batch("small", small)
        await store.append_batch("large", large)

        # Not strict: a retry gets the stored offsets back and writes nothing.
        assert (await core.append("small", batch_of(small)))[0] == [0, 1, 2]
        with pytest.raises(DuplicateEventError):
            await core.append("small", batch_of(small), None, True)
        with pytest.raises(DuplicateEventError):
            await core.append("large", batch_of(large), None, True)
        # Grouped: concurrent strict retries each fail on their own, the new appends succeed.
        calls = [core.append("small", batch_of(small), None, True) for _ in range(8)]
        calls += [core.append(f"new-{i}", batch_of([Event("N", {})]), None, True) for i in range(8)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(o, DuplicateEventError) for o in outcomes[:8]), outcomes[:8]
        assert [o[0] for o in outcomes[8:]] == [[0]] * 8  # type: ignore[index]

        assert await store.get_stream_version("small") == 2
        assert await store.get_stream_version("large") == 99
        assert len([e async for e in store.read_all()]) == 3 + 100 + 8


async def test_blocking_calls_answer_as_the_awaitable_ones(pg_options: PostgresOptions) -> None:
    async with pgstreams.connect(pg_options) as store:
        blocking = store._core.blocking()

        def from_a_thread() -> None:
            events = [Event("E", {"n": n}) for n in range(5)]
            offsets, positions = blocking.append("s", batch_of(events), None, True)
            assert offsets == [0, 1, 2, 3, 4] and positions == [1, 2, 3, 4, 5]
            assert blocking.query("SELECT $1::bigint + 1, $2::text", [41, "x"]) == [(42, "x")]
            with pytest.raises(DuplicateEventError):
                blocking.append("s", batch_of(events), None, True)

        await asyncio.to_thread(from_a_thread)
        assert [e.data["n"] async for e in store.read_stream("s")] == [0, 1, 2, 3, 4]


async def test_threads_appending_one_id_at_once_let_exactly_one_through(
    pg_options: PostgresOptions,
) -> None:
    async with pgstreams.connect(pg_options) as store:
        blocking = store._core.blocking()
        event_id = uuid.uuid4()
        start = threading.Barrier(8)

        def contender(_: int) -> bool:
            start.wait()
            try:
                blocking.append("one", batch_of([Event("E", {}, id=event_id)]), None, True)
            except DuplicateEventError:
                return False
            return True

        for _ in range(5):  # several rounds: concurrent calls are grouped differently each time
            event_id = uuid.uuid4()
            with ThreadPoolExecutor(8) as pool:
                won = await asyncio.to_thread(lambda: list(pool.map(contender, range(8))))
            assert won.count(True) == 1, won
        assert await store.get_stream_version("one") == 4


class Interrupted(Exception):
    pass


async def test_a_signal_interrupts_a_blocked_caller_and_cancels_its_statement(
    pg_options: PostgresOptions,
) -> None:
    async with pgstreams.connect(pg_options) as store:
        blocking = store._core.blocking()
        marker = f"interrupted-{uuid.uuid4().hex}"

        def interrupt(signum: int, frame: object) -> None:
            raise Interrupted

        previous = signal.signal(signal.SIGUSR1, interrupt)
        sender = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGUSR1))
        try:
            sender.start()
            with pytest.raises(Interrupted):
                # This thread is the main thread: the handler runs while it waits.
                blocking.query(f"SELECT pg_sleep(60), '{marker}'")
        finally:
            sender.cancel()
            signal.signal(signal.SIGUSR1, previous)

        async def still_running() -> int:
            rows = await run_sql(
                pg_options.connection_string,
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1 AND pid <> "
                "pg_backend_pid()",
                [f"%{marker}%"],
            )
            return int(rows[0][0])

        # The server was told to stop the statement: it does not sleep out its minute.
        assert await eventually(still_running, lambda running: running == 0) == 0
        assert await asyncio.to_thread(blocking.query, "SELECT 1") == [(1,)]


async def test_a_blocking_transaction_commits_all_or_nothing(pg_options: PostgresOptions) -> None:
    async with pgstreams.connect(pg_options) as store:
        blocking = store._core.blocking()
        table = f'"{pg_options.schema_name}".ledger'
        await run_sql(pg_options.connection_string, f"CREATE TABLE {table} (n int)")

        def commits() -> list[int]:
            tx = blocking.begin(30.0)
            assert tx.execute(f"INSERT INTO {table} VALUES ($1)", [1]) == 1
            appends = [
                ("a", batch_of([Event("E", {})]), None),
                ("b", batch_of([Event("E", {})]), -1),
            ]
            appended = tx.commit(appends, [], [], [])[0]
            return [positions[0] for _, positions in appended]

        def conflicts() -> None:
            tx = blocking.begin(30.0)
            tx.execute(f"INSERT INTO {table} VALUES ($1)", [2])
            # "b" is at version 0 now: the expectation fails at commit, nothing is written.
            tx.commit(
                [("a", batch_of([Event("E", {})]), None), ("b", batch_of([Event("E", {})]), -1)],
                [],
                [],
                [],
            )

        def rolled_back() -> None:
            tx = blocking.begin(30.0)
            tx.execute(f"INSERT INTO {table} VALUES ($1)", [3])
            tx.rollback()

        assert await asyncio.to_thread(commits) == [1, 2]
        with pytest.raises(pgstreams.ConcurrencyError):
            await asyncio.to_thread(conflicts)
        await asyncio.to_thread(rolled_back)

        rows = await run_sql(pg_options.connection_string, f"SELECT n FROM {table}")
        assert rows == [(1,)]
        assert [e.stream async for e in store.read_all()] == ["a", "b"]
