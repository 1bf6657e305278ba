"""``wake_latency``: how soon a consumer parked in ``dequeue(…, wait=…)`` (woken by
LISTEN/NOTIFY) gets a message after ``enqueue``, against two raw consumers: one polling every
10 ms, and one hand-written asyncpg LISTEN consumer (the producer's INSERT sends the NOTIFY;
the consumer dequeues when it arrives), the least a wake-up can cost on this machine."""

from __future__ import annotations

import asyncio
import time
from typing import Final

from ...events import Event, QueuedEvent, new_event_id
from ..errors import BenchmarkError
from ..payloads import EVENT_TYPE, METADATA
from ..results import BenchResult, latency_rows, percentile
from ..runner import Run, Scope, alternating_samples, count_rows, expect
from ._shared import create_raw_queue, raw_dequeue_sql

NAME: Final = "wake_latency"
ORDER: Final = 60

RAW_POLL_SECONDS: Final = 0.010
WAKE_GOAL_MS: Final = 2.0


async def run(bench: Run) -> list[BenchResult]:
    samples = bench.settings.wake_samples
    warmup = 5
    queue = "jobs-wake"
    rng = bench.rng
    async with Scope(bench) as scope:
        ps_schema = scope.schema("wake_ps")
        raw_schema = scope.schema("wake_raw")
        store = await scope.store(ps_schema)
        await scope.store(raw_schema)  # migrates the raw side's schema
        consumer_conn = await scope.raw()
        producer_conn = await scope.raw()
        payloads = bench.payloads()
        qt = await create_raw_queue(producer_conn, raw_schema)
        dequeue_one_sql = raw_dequeue_sql(qt, 1)
        insert_sql = (
            f"INSERT INTO {qt} (id, stream_name, event_type, data, metadata) "
            "VALUES ($1, $2, $3, $4, $5)"
        )

        async def ps_sample() -> float:
            async def consume() -> tuple[QueuedEvent | None, float]:
                message = await store.dequeue(queue, "waiter", wait=5.0)
                return message, time.perf_counter()

            task = asyncio.create_task(consume())
            await asyncio.sleep(rng.uniform(0.015, 0.025))  # the consumer is parked by now
            if task.done():
                raise BenchmarkError("the waiting consumer returned before the enqueue")
            start = time.perf_counter()
            await store.enqueue(queue, Event(EVENT_TYPE, payloads.take(1)[0], metadata=METADATA))
            message, woke = await task
            if message is None:
                raise BenchmarkError("the waiting consumer was not woken within 5 s")
            expect("acknowledge", await store.acknowledge(message), True)
            return (woke - start) * 1000

        async def raw_sample() -> float:
            async def consume() -> float:
                deadline = time.perf_counter() + 5.0
                while time.perf_counter() < deadline:
                    row = await consumer_conn.fetchrow(dequeue_one_sql, queue, "waiter")
                    if row is not None:
                        woke = time.perf_counter()
                        await consumer_conn.execute(f"DELETE FROM {qt} WHERE id = $1", row["id"])
                        return woke
                    await asyncio.sleep(RAW_POLL_SECONDS)
                raise BenchmarkError("the polling consumer found nothing within 5 s")

            task = asyncio.create_task(consume())
            await asyncio.sleep(rng.uniform(0.015, 0.025))
            start = time.perf_counter()
            await producer_conn.execute(
                insert_sql, new_event_id(), queue, EVENT_TYPE, payloads.take(1)[0], METADATA
            )
            woke = await task
            return (woke - start) * 1000

        listen_conn = await scope.raw()
        channel = f"wake_{bench.run_id}"
        notified = asyncio.Event()
        await listen_conn.add_listener(channel, lambda *_: notified.set())
        insert_and_notify_sql = (
            f"WITH inserted AS ({insert_sql} RETURNING 1) "
            f"SELECT pg_notify('{channel}', $2) FROM inserted"
        )

        async def raw_listen_sample() -> float:
            async def consume() -> float:
                while True:
                    notified.clear()
                    row = await listen_conn.fetchrow(dequeue_one_sql, queue, "listener")
                    if row is not None:
                        woke = time.perf_counter()
                        await listen_conn.execute(f"DELETE FROM {qt} WHERE id = $1", row["id"])
                        return woke
                    await asyncio.wait_for(notified.wait(), 5.0)

            task = asyncio.create_task(consume())
            await asyncio.sleep(rng.uniform(0.015, 0.025))
            start = time.perf_counter()
            await producer_conn.execute(
                insert_and_notify_sql,
                new_event_id(),
                queue,
                EVENT_TYPE,
                payloads.take(1)[0],
                METADATA,
            )
            woke = await task
            return (woke - start) * 1000

        bench.say(f"wake_latency: {samples} samples per side")
        latencies = await alternating_samples(
            [("pgstreams", ps_sample), ("raw", raw_sample), ("raw_listen", raw_listen_sample)],
            samples,
            warmup,
            block=25,
        )
        expect("pgstreams messages left", await store.get_pending_count(queue), 0)
        expect(
            "raw messages left", await count_rows(consumer_conn, f"SELECT count(*) FROM {qt}"), 0
        )

    p50 = percentile(latencies["pgstreams"], 50)
    rows = latency_rows(
        "wake_latency",
        "enqueue -> waiting consumer",
        latencies,
        f"asyncpg polling every {RAW_POLL_SECONDS * 1000:.0f} ms",
    )
    rows[0].goal = f"p50 <= {WAKE_GOAL_MS:g} ms"
    rows[0].met = p50 <= WAKE_GOAL_MS
    rows += latency_rows(
        "wake_latency",
        "vs LISTEN by hand",
        {"pgstreams": latencies["pgstreams"], "raw": latencies["raw_listen"]},
        "asyncpg LISTEN consumer, INSERT + pg_notify producer",
    )
    return rows
