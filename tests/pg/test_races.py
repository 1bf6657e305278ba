"""Races and faults against a real server: the gap-safe global feed under concurrent
writers with slow and rolled-back transactions, cancelled appends, and read loops that
stop early."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pgstreams
from pgstreams import Event, PostgresOptions, _core
from support import eventually

WRITERS = 8
BATCHES_PER_WRITER = 12


async def slow_append(
    options: PostgresOptions, stream: str, events: list[Event], *, delay: float, rollback: bool
) -> None:
    """Appends inside an explicit transaction held open for ``delay`` seconds after the
    events were written (the window in which a later position can become visible first),
    then commits or rolls back."""
    session = await _core.Session.open(options.to_core_config(), None)
    try:
        await session.execute("BEGIN")
        await session.query(
            f'SELECT * FROM "{options.schema_name}".append_events($1, NULL, $2, $3, $4, $5, $6, $7)',
            [
                stream,
                [e.id for e in events],
                [e.type for e in events],
                [e.data for e in events],
                [dict(e.metadata) for e in events],
                [None] * len(events),
                [None] * len(events),
            ],
        )
        await asyncio.sleep(delay)
        await session.execute("ROLLBACK" if rollback else "COMMIT")
    finally:
        await session.close()


async def test_tailing_reader_sees_every_committed_event_exactly_once(
    pg_options: PostgresOptions,
) -> None:
    rng = random.Random(7)
    async with pgstreams.connect(pg_options, read_batch_size=7) as store:
        committed: set[str] = set()
        writers_done = asyncio.Event()

        async def writer(number: int) -> None:
            stream = f"writer-{number}"
            for batch in range(BATCHES_PER_WRITER):
                events = [
                    Event("E", {"w": number, "b": batch, "i": i}) for i in range(rng.randint(1, 4))
                ]
                rollback = rng.random() < 0.2
                # Through the SQL function in a held-open transaction most of the time, through
                # the store's own append (one statement) the rest.
                if rng.random() < 0.7:
                    await slow_append(
                        pg_options, stream, events, delay=rng.uniform(0, 0.05), rollback=rollback
                    )
                    if not rollback:
                        committed.update(str(e.id) for e in events)
                else:
                    await store.append_batch(stream, events)
                    committed.update(str(e.id) for e in events)

        seen: list[pgstreams.StoredEvent] = []

        async def reader() -> None:
            position = None
            while True:
                done = writers_done.is_set()
                async for event in store.read_all(position):
                    seen.append(event)
                    position = event.position
                if done:
                    return
                await asyncio.sleep(0.005)

        reading = asyncio.create_task(reader())
        await asyncio.gather(*(writer(n) for n in range(WRITERS)))
        writers_done.set()
        await reading

        ids = [str(e.id) for e in seen]
        assert len(ids) == len(set(ids)), "an event was delivered twice"
        assert set(ids) == committed, "the reader missed committed events or saw rolled-back ones"
        positions = [e.position for e in seen]
        assert positions == sorted(positions)
        for number in range(WRITERS):
            offsets = [e.offset for e in seen if e.stream == f"writer-{number}"]
            assert offsets == sorted(offsets)
            assert offsets == list(range(len(offsets))), "per-stream offsets must have no gaps"


async def test_cancelled_appends_leave_whole_batches_and_no_open_transaction(
    pg_options: PostgresOptions,
) -> None:
    rng = random.Random(11)
    async with pgstreams.connect(pg_options, max_pool_size=4) as store:
        batches: dict[str, int] = {}
        sizes: dict[int, int] = {}
        for attempt in range(60):
            # Small batches take the one-statement path, large ones binary COPY.
            sizes[attempt] = 50 if attempt % 2 else 200
            events = [Event("E", {"attempt": attempt, "i": i}) for i in range(sizes[attempt])]
            for event in events:
                batches[str(event.id)] = attempt
            task = asyncio.create_task(store.append_batch("cancelled", events))
            await asyncio.sleep(rng.uniform(0, 0.01))
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Every connection the pool hands out is usable and not inside a transaction.
        for _ in range(8):
            rows = await store._core.query(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%' AND application_name = 'pgstreams'"
            )
            assert rows[0][0] == 0
        offsets = []
        by_attempt: dict[int, int] = {}
        async for event in store.read_stream("cancelled"):
            offsets.append(event.offset)
            attempt = batches[str(event.id)]
            by_attempt[attempt] = by_attempt.get(attempt, 0) + 1
        assert offsets == list(range(len(offsets)))
        assert all(count == sizes[a] for a, count in by_attempt.items()), "a batch was half written"
        assert await store.get_stream_version("cancelled") == len(offsets) - 1
        # And the store still appends.
        await store.append("cancelled", Event("After", {}))


async def test_breaking_out_of_a_read_loop_returns_its_connection(
    pg_options: PostgresOptions,
) -> None:
    async with pgstreams.connect(pg_options, read_batch_size=5, max_pool_size=2) as store:
        await store.append_batch("s", [Event("E", {"i": i}) for i in range(50)])
        for _ in range(10):  # more loops than the pool has connections
            async for event in store.read_stream("s"):
                if event.offset == 7:
                    break
            async for event in store.read_all():
                if event.position > 3:
                    break

        # A page read ahead when the loop broke finishes and gives its connection back.
        async def pool() -> dict[str, int]:
            return store.pool_status()

        status = await eventually(pool, lambda status: status["available"] == status["size"])
        assert status["available"] == status["size"]
        assert status["size"] <= 2
        assert len([e async for e in store.read_stream("s")]) == 50
