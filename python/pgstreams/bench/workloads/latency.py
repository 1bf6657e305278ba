"""``latency``: one call at a time, p50 and p99: a single ``append`` against one prepared
``INSERT``, and ``dequeue`` + ``acknowledge`` (also with the ack folded into the next dequeue)
against the raw two-statement round trip."""

from __future__ import annotations

import time
from typing import Final

from ...events import Event, QueuedEvent, new_event_id
from ..errors import BenchmarkError
from ..payloads import EVENT_TYPE, METADATA, make_events
from ..results import BenchResult, latency_rows
from ..runner import Run, Scope, alternating_samples, count_rows, expect
from ._shared import (
    ENQUEUE_BATCH,
    EVENT_COPY_COLUMNS,
    create_raw_queue,
    raw_dequeue_sql,
    raw_enqueue,
)

NAME: Final = "latency"
ORDER: Final = 50


async def run(bench: Run) -> list[BenchResult]:
    samples = bench.settings.latency_samples
    warmup = 50
    results: list[BenchResult] = []
    async with Scope(bench) as scope:
        ps_schema = scope.schema("lat_ps")
        raw_schema = scope.schema("lat_raw")
        store = await scope.store(ps_schema)
        await scope.store(raw_schema)  # migrates the raw side's schema (its events table)
        conn = await scope.raw()
        qt = await create_raw_queue(conn, raw_schema)
        payloads = bench.payloads()

        # single append
        bench.say("latency: single append")
        stream = "orders-latency"
        ps_count = raw_count = 0
        insert_sql = (
            f'INSERT INTO "{raw_schema}".events ({", ".join(EVENT_COPY_COLUMNS)}) '
            "VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )

        async def ps_append() -> float:
            nonlocal ps_count
            event = Event(EVENT_TYPE, payloads.take(1)[0], metadata=METADATA, correlation_id="one")
            start = time.perf_counter()
            offset = await store.append(stream, event)
            elapsed = time.perf_counter() - start
            expect("append offset", offset, ps_count)
            ps_count += 1
            return elapsed * 1000

        async def raw_append() -> float:
            nonlocal raw_count
            payload = payloads.take(1)[0]
            start = time.perf_counter()
            await conn.execute(
                insert_sql, stream, raw_count, new_event_id(), EVENT_TYPE, payload, METADATA, "one"
            )
            elapsed = time.perf_counter() - start
            raw_count += 1
            return elapsed * 1000

        appends = await alternating_samples(
            [("pgstreams", ps_append), ("raw", raw_append)], samples, warmup
        )
        expect(
            "pgstreams events",
            await count_rows(conn, f'SELECT count(*) FROM "{ps_schema}".events'),
            ps_count,
        )
        expect(
            "raw events",
            await count_rows(conn, f'SELECT count(*) FROM "{raw_schema}".events'),
            raw_count,
        )
        results += latency_rows(
            "latency",
            "single append",
            appends,
            "asyncpg INSERT (offset client side)",
            goal_p50=1 / 1.1,
        )

        # single dequeue + ack
        bench.say("latency: dequeue + ack")
        queue = "jobs-latency"
        messages = 2 * (samples + warmup) + 10
        for start_at in range(0, messages, ENQUEUE_BATCH):
            chunk = make_events(payloads.take(min(ENQUEUE_BATCH, messages - start_at)), "lat")
            await store.enqueue_batch(queue, chunk)
            await raw_enqueue(conn, raw_schema, queue, chunk)
        dequeue_one_sql = raw_dequeue_sql(qt, 1)
        delete_one_sql = f"DELETE FROM {qt} WHERE id = $1"

        async def ps_dequeue_ack() -> float:
            start = time.perf_counter()
            message = await store.dequeue(queue, "c")
            if message is None:
                raise BenchmarkError("pgstreams dequeue found the queue empty")
            acked = await store.acknowledge(message)
            elapsed = time.perf_counter() - start
            expect("pgstreams acknowledge", acked, True)
            return elapsed * 1000

        async def raw_dequeue_ack() -> float:
            start = time.perf_counter()
            row = await conn.fetchrow(dequeue_one_sql, queue, "c")
            if row is None:
                raise BenchmarkError("raw dequeue found the queue empty")
            status = await conn.execute(delete_one_sql, row["id"])
            elapsed = time.perf_counter() - start
            expect("raw DELETE status", status, "DELETE 1")
            return elapsed * 1000

        round_trips = await alternating_samples(
            [("pgstreams", ps_dequeue_ack), ("raw", raw_dequeue_ack)], samples, warmup
        )
        results += latency_rows(
            "latency", "dequeue + ack", round_trips, "asyncpg UPDATE ... LIMIT 1 + DELETE"
        )

        # dequeue with the previous message's ack folded in: one round trip per message
        previous: QueuedEvent | None = None

        async def ps_folded() -> float:
            nonlocal previous
            start = time.perf_counter()
            batch = await store.dequeue_batch(
                queue, "c", 1, acknowledge=[previous] if previous is not None else None
            )
            elapsed = time.perf_counter() - start
            if not batch:
                raise BenchmarkError("pgstreams dequeue found the queue empty")
            previous = batch[0]
            return elapsed * 1000

        # Only pgstreams' side is new; the raw baseline is the two-statement round trip above.
        folded: list[float] = []
        for _ in range(warmup):
            await ps_folded()
        for _ in range(samples):
            folded.append(await ps_folded())
        if previous is not None:
            await store.acknowledge(previous)
        left = await store.get_pending_count(queue)
        raw_left = await count_rows(conn, f"SELECT count(*) FROM {qt}")
        expect("pgstreams messages left", left, messages - 2 * (samples + warmup))
        expect("raw messages left", raw_left, messages - (samples + warmup))
        results += latency_rows(
            "latency",
            "dequeue w/ folded ack",
            {"pgstreams": folded, "raw": round_trips["raw"]},
            "asyncpg UPDATE ... LIMIT 1 + DELETE",
        )
    return results
