"""``subscription``: a consumer group member (``store.subscribe``) catching up on a long stream,
against a plain ``read_stream`` loop over the same stream (what the subscription adds: leases,
heartbeats, commits per batch); then live latency, append -> the subscriber has the event,
against a hand-written asyncpg LISTEN consumer (the producer's INSERT sends the NOTIFY, the
consumer reads the stream's new rows when it arrives)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

from ...events import Event, new_event_id
from ..errors import BenchmarkError
from ..payloads import EVENT_TYPE, METADATA
from ..results import BenchResult, latency_rows, rate_result
from ..runner import Run, Scope, alternating_samples, expect
from ._shared import load_stream

NAME: Final = "subscription"
ORDER: Final = 25

BATCH: Final = 1000


async def run(bench: Run) -> list[BenchResult]:
    count = bench.settings.read_events
    stream = "ledger-sub"
    async with Scope(bench) as scope:
        schema = scope.schema("sub")
        store = await scope.store(schema, event_data_index=False)
        conn = await scope.raw()
        bench.say(f"subscription: loading {count:,} events")
        await load_stream(conn, schema, stream, count, bench.payloads())

        runs = 0

        async def catch_up() -> float:
            nonlocal runs
            runs += 1
            seen = 0
            start = time.perf_counter()
            async with store.subscribe(stream, f"g{runs}", "m", batch_size=BATCH) as sub:
                async for event in sub:
                    _ = event.data
                    seen += 1
                    if seen == count:
                        break
            elapsed = time.perf_counter() - start
            expect("committed offset", await store.get_committed_offset(stream, f"g{runs}"), count)
            return count / elapsed

        async def plain_loop() -> float:
            seen = 0
            start = time.perf_counter()
            async for event in store.read_stream(stream):
                _ = event.data
                seen += 1
            elapsed = time.perf_counter() - start
            expect("events read", seen, count)
            return count / elapsed

        rates: dict[str, list[float]] = {"pgstreams": [], "raw": []}
        for rep in range(bench.settings.read_repetitions + 1):  # the first is the warm-up
            bench.say(f"subscription: catch-up rep {rep}")
            order = [("pgstreams", catch_up), ("raw", plain_loop)]
            for side, read in order if rep % 2 == 0 else reversed(order):
                rate = await read()
                if rep:
                    rates[side].append(rate)

        latencies = await _live_latency(bench, store, conn, schema, scope)

    return [
        rate_result(
            "subscription",
            f"catch-up, {count:,} events",
            "ev/s",
            rates["pgstreams"],
            rates["raw"],
            "pgstreams read_stream loop, same stream",
            None,
        ),
        *latency_rows(
            "subscription",
            "append -> subscriber",
            latencies,
            "asyncpg LISTEN consumer, INSERT + pg_notify producer",
        ),
    ]


async def _live_latency(
    bench: Run, store: Any, conn: Any, schema: str, scope: Scope
) -> dict[str, list[float]]:
    stream, raw_stream = "live-sub", "live-raw"
    payloads = bench.payloads()
    arrivals: asyncio.Queue[float] = asyncio.Queue()

    async def subscriber() -> None:
        async with store.subscribe(stream, "live", "m") as sub:
            async for _ in sub:
                arrivals.put_nowait(time.perf_counter())

    listening = asyncio.create_task(subscriber())
    await asyncio.sleep(0.2)  # registered, caught up, parked

    async def ps_sample() -> float:
        start = time.perf_counter()
        await store.append(stream, Event(EVENT_TYPE, payloads.take(1)[0], metadata=METADATA))
        arrived = await asyncio.wait_for(arrivals.get(), 5.0)
        return (arrived - start) * 1000

    listen_conn = await scope.raw()
    channel = f"sub_{bench.run_id}"
    notified = asyncio.Event()
    await listen_conn.add_listener(channel, lambda *_: notified.set())
    next_offset = 0
    insert_sql = (
        f'WITH inserted AS (INSERT INTO "{schema}".events (stream_name, stream_offset, event_id, '
        "event_type, data, metadata) VALUES ($1, $2, $3, $4, $5, $6) RETURNING 1) "
        f"SELECT pg_notify('{channel}', $1) FROM inserted"
    )
    read_sql = (
        f'SELECT stream_offset, data FROM "{schema}".events '
        "WHERE stream_name = $1 AND stream_offset >= $2 ORDER BY stream_offset"
    )

    async def raw_sample() -> float:
        nonlocal next_offset
        wanted = next_offset

        async def consume() -> float:
            while True:
                notified.clear()
                rows = await listen_conn.fetch(read_sql, raw_stream, wanted)
                if rows:
                    return time.perf_counter()
                await asyncio.wait_for(notified.wait(), 5.0)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.005)
        start = time.perf_counter()
        await conn.execute(
            insert_sql,
            raw_stream,
            wanted,
            new_event_id(),
            EVENT_TYPE,
            payloads.take(1)[0],
            METADATA,
        )
        next_offset += 1
        return (await task - start) * 1000

    samples = bench.settings.wake_samples
    bench.say(f"subscription: live latency, {samples} samples per side")
    try:
        return await alternating_samples(
            [("pgstreams", ps_sample), ("raw", raw_sample)], samples, 5, block=25
        )
    finally:
        listening.cancel()
        results = await asyncio.gather(listening, return_exceptions=True)
        if results and isinstance(results[0], Exception):
            raise BenchmarkError(f"the subscriber failed: {results[0]}")
